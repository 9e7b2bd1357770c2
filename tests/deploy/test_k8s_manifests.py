"""Lints the Kubernetes manifests (deploy/k8s) and the image (deploy/Dockerfile).

No cluster and no container engine here, so these check what would make
`kubectl apply` refuse the manifests, or make the pods start and then fail:
selectors that select nothing, a password in a URL, a password file that is
not where the Secret is mounted, a probe on a port nobody declares, a
kustomization that forgets a file.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"

# Each kind the manifests may hold, with the apiVersion that serves it.
API_VERSIONS = {
    "Deployment": "apps/v1",
    "Service": "v1",
    "Secret": "v1",
    "ConfigMap": "v1",
    "PersistentVolumeClaim": "v1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
# A password in a database URL: rl-lab refuses one, and it must not be in
# the repository either.
PASSWORD_URL = re.compile(r"postgres(ql)?://[^/@:]+:[^@]+@")
# What rl-lab accepts as a store: postgres://USER@HOST[:PORT]/DB.
STORE_URL = re.compile(r"^postgres(ql)?://[^/@:]+@[^/@]+/[^/?#@]+$")
# A container's $(VAR) references, which Kubernetes expands from its env.
VAR_REF = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def manifest_files():
    files = sorted(K8S.glob("*.yaml")) + sorted(K8S.glob("*.yml"))
    assert files, f"no manifests under {K8S}"
    return files


def documents():
    """Every (file, document) under deploy/k8s, empty documents left out."""
    docs = []
    for path in manifest_files():
        with path.open() as f:
            docs.extend((path, doc) for doc in yaml.safe_load_all(f) if doc is not None)
    assert docs, "the manifests hold no documents"
    return docs


def objects(kind):
    return [doc for _, doc in documents() if doc.get("kind") == kind]


def named(kind, name):
    found = [o for o in objects(kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name!r}: {len(found)} declared, expected 1"
    return found[0]


def deployments():
    found = objects("Deployment")
    assert found, "no Deployment"
    return found


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def containers(deployment):
    spec = pod_spec(deployment)
    return spec.get("initContainers", []) + spec["containers"]


def deployment_running(command):
    """The one Deployment whose container runs `rl-lab COMMAND`."""
    found = [d for d in deployments() if any(args(c)[:1] == [command] for c in containers(d))]
    assert len(found) == 1, f"{len(found)} Deployments run `rl-lab {command}`, expected 1"
    return found[0]


def rl_lab_container(deployment, command):
    found = [c for c in containers(deployment) if args(c)[:1] == [command]]
    assert len(found) == 1
    return found[0]


def args(container):
    """The arguments rl-lab gets (the image's ENTRYPOINT is rl-lab)."""
    command = container.get("command")
    if command:
        assert Path(command[0]).name == "rl-lab", f"{container['name']}: command {command} is not rl-lab"
        return [str(a) for a in command[1:] + container.get("args", [])]
    return [str(a) for a in container.get("args", [])]


def flag(arguments, name):
    """The value of `--name VALUE` or `--name=VALUE`, or None."""
    for i, arg in enumerate(arguments):
        if arg == name:
            assert i + 1 < len(arguments), f"{name} has no value"
            return arguments[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def env(container, name):
    found = [e for e in container.get("env", []) if e["name"] == name]
    assert len(found) <= 1, f"{container['name']}: {name} set twice"
    return found[0] if found else None


def container_port(container, port):
    """The containerPort a Service's targetPort or a probe's port means, or None."""
    for p in container.get("ports", []):
        if port == p.get("name") or port == p["containerPort"]:
            return p["containerPort"]
    return None


def cpu_cores(quantity):
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


MEMORY_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def memory_bytes(quantity):
    match = re.fullmatch(r"([0-9.]+)([KMGT]i|[kMGT])?", str(quantity))
    assert match, f"memory quantity {quantity!r} not understood"
    return float(match[1]) * MEMORY_UNITS.get(match[2], 1)


# --- every document ---------------------------------------------------------


def test_every_document_is_a_known_kind_with_its_api_version_and_a_name():
    for path, doc in documents():
        where = f"{path.name}: {doc.get('kind')}"
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
        assert doc.get("kind") in API_VERSIONS, f"{where}: unknown kind"
        assert doc.get("apiVersion") == API_VERSIONS[doc["kind"]], (
            f"{where}: apiVersion {doc.get('apiVersion')!r}, expected {API_VERSIONS[doc['kind']]!r}")
        assert (doc.get("metadata") or {}).get("name"), f"{where}: no metadata.name"


def test_names_are_unique_per_kind():
    seen = set()
    for path, doc in documents():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"{path.name}: {key[0]} {key[1]!r} declared twice"
        seen.add(key)


def test_the_kustomization_lists_exactly_the_manifests():
    kustomizations = [(p, d) for p, d in documents() if d["kind"] == "Kustomization"]
    assert len(kustomizations) == 1, "expected one kustomization.yaml (the README applies it)"
    path, kustomization = kustomizations[0]
    listed = kustomization.get("resources", [])
    assert len(listed) == len(set(listed)), "the kustomization lists a file twice"
    present = {p.name for p in manifest_files()} - {path.name}
    assert set(listed) == present, (
        f"missing from {path.name}: {sorted(present - set(listed))}; "
        f"listed but absent: {sorted(set(listed) - present)}")


def test_no_url_anywhere_holds_a_password():
    files = [p for p in DEPLOY.rglob("*") if p.is_file()]
    assert DOCKERFILE in files and len(files) > 1
    for path in files:
        match = PASSWORD_URL.search(path.read_text())
        assert not match, f"{path.relative_to(ROOT)}: a database URL with a password"


# --- Deployments and their pods ----------------------------------------------


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_deployment_runs_each_of_serve_and_worker(command):
    deployment_running(command)


def test_deployment_selectors_select_their_own_pods():
    for d in deployments():
        match = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert match, f"{d['metadata']['name']}: empty selector"
        assert match.items() <= labels.items(), (
            f"{d['metadata']['name']}: selector {match} is not among the pod labels {labels}")


def test_deployment_selectors_do_not_overlap():
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in deployments()}
    for d in deployments():
        match = d["spec"]["selector"]["matchLabels"]
        claimed = [name for name, labels in pods.items() if match.items() <= labels.items()]
        assert claimed == [d["metadata"]["name"]], f"{d['metadata']['name']}: selector also selects {claimed}"


def test_every_container_has_an_image_and_bounded_resources():
    for d in deployments():
        for c in containers(d):
            where = f"{d['metadata']['name']}/{c['name']}"
            assert c.get("image"), f"{where}: no image"
            resources = c.get("resources") or {}
            requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
            for name in ("cpu", "memory"):
                assert name in requests, f"{where}: no {name} request"
                assert name in limits, f"{where}: no {name} limit"
            assert cpu_cores(requests["cpu"]) <= cpu_cores(limits["cpu"]), f"{where}: cpu request over limit"
            assert memory_bytes(requests["memory"]) <= memory_bytes(limits["memory"]), (
                f"{where}: memory request over limit")


def test_arguments_and_env_values_are_strings():
    # The API refuses `- 4` in args or `value: 4`: they are lists of strings.
    for d in deployments():
        for c in containers(d):
            for arg in c.get("command", []) + c.get("args", []):
                assert isinstance(arg, str), f"{d['metadata']['name']}/{c['name']}: argument {arg!r} unquoted"
            for e in c.get("env", []):
                assert isinstance(e.get("value", ""), str), f"{c['name']}: {e['name']} is not a string"


def test_every_volume_mount_names_a_declared_volume_and_every_volume_a_declared_source():
    for d in deployments():
        volumes = {v["name"]: v for v in pod_spec(d).get("volumes", [])}
        for c in containers(d):
            for mount in c.get("volumeMounts", []):
                assert mount["name"] in volumes, (
                    f"{d['metadata']['name']}/{c['name']}: mounts undeclared volume {mount['name']!r}")
        for v in volumes.values():
            if "secret" in v:
                named("Secret", v["secret"]["secretName"])
            if "configMap" in v:
                named("ConfigMap", v["configMap"]["name"])
            if "persistentVolumeClaim" in v:
                named("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"])


def test_every_env_reference_names_a_declared_key():
    for d in deployments():
        for c in containers(d):
            for e in c.get("env", []):
                source = e.get("valueFrom") or {}
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    secret = named("Secret", ref["name"])
                    keys = {**secret.get("data", {}), **secret.get("stringData", {})}
                    assert ref["key"] in keys, f"{e['name']}: Secret {ref['name']} has no key {ref['key']!r}"
                if "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    assert ref["key"] in named("ConfigMap", ref["name"]).get("data", {}), (
                        f"{e['name']}: ConfigMap {ref['name']} has no key {ref['key']!r}")


def test_every_variable_an_argument_names_is_in_the_container_env():
    # Kubernetes passes an undefined $(VAR) on literally.
    for d in deployments():
        for c in containers(d):
            defined = {e["name"] for e in c.get("env", [])}
            for arg in args(c):
                for var in VAR_REF.findall(arg):
                    assert var in defined, f"{d['metadata']['name']}/{c['name']}: $({var}) undefined"


def test_credentials_come_from_secrets_never_literals():
    for d in deployments():
        for c in containers(d):
            for name in ("PGPASSWORD", "RL_LAB_TOKEN"):
                e = env(c, name)
                if e is not None:
                    assert "secretKeyRef" in (e.get("valueFrom") or {}), (
                        f"{d['metadata']['name']}/{c['name']}: {name} is not from a Secret")


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_store_url_is_set_and_has_no_password(command):
    c = rl_lab_container(deployment_running(command), command)
    url = flag(args(c), "--store")
    if url is None:
        e = env(c, "RL_LAB_STORE")
        assert e is not None, f"`rl-lab {command}` has neither --store nor RL_LAB_STORE"
        if "value" in e:
            url = e["value"]
        else:
            source = e["valueFrom"]
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                url = named("ConfigMap", ref["name"])["data"][ref["key"]]
            else:
                ref = source["secretKeyRef"]
                url = named("Secret", ref["name"])["stringData"][ref["key"]]
    assert STORE_URL.match(url), f"`rl-lab {command}`: store {url!r} is not postgres://USER@HOST[:PORT]/DB"


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_password_file_is_a_key_of_a_mounted_secret(command):
    d = deployment_running(command)
    c = rl_lab_container(d, command)
    e = env(c, "RL_LAB_STORE_PASSWORD_FILE")
    assert e is not None and e.get("value"), f"`rl-lab {command}`: no RL_LAB_STORE_PASSWORD_FILE"
    path = Path(e["value"])
    volumes = {v["name"]: v for v in pod_spec(d).get("volumes", [])}
    for mount in c.get("volumeMounts", []):
        mounted = Path(mount["mountPath"])
        if mounted not in path.parents or "subPath" in mount:
            continue
        secret_source = volumes[mount["name"]].get("secret")
        assert secret_source, f"{path} is in volume {mount['name']!r}, which is not a Secret"
        secret = named("Secret", secret_source["secretName"])
        keys = {**secret.get("data", {}), **secret.get("stringData", {})}
        files = {item["path"]: item["key"] for item in secret_source["items"]} if "items" in secret_source \
            else {key: key for key in keys}
        relative = str(path.relative_to(mounted))
        assert relative in files, f"{path}: Secret {secret['metadata']['name']} gives no file {relative!r}"
        assert files[relative] in keys
        return
    pytest.fail(f"`rl-lab {command}`: {path} is under no volume mount")


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_the_run_folders_are_the_shared_volume(command):
    d = deployment_running(command)
    c = rl_lab_container(d, command)
    data = flag(args(c), "--data")
    assert data, f"`rl-lab {command}` has no --data"
    mounts = [m for m in c.get("volumeMounts", []) if m["mountPath"] == data]
    assert len(mounts) == 1, f"`rl-lab {command}`: nothing mounted at --data {data}"
    volume = next(v for v in pod_spec(d)["volumes"] if v["name"] == mounts[0]["name"])
    claim = named("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    # A worker resumes another's run from the checkpoint in its folder.
    assert "ReadWriteMany" in claim["spec"]["accessModes"]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_pods_outlast_the_shutdown(command):
    # Both stop within 10 s of SIGTERM; a worker checkpoints its runs first.
    assert pod_spec(deployment_running(command)).get("terminationGracePeriodSeconds", 30) >= 15


# --- the API ----------------------------------------------------------------


def test_the_api_listens_on_its_declared_port_and_executes_nothing():
    c = rl_lab_container(deployment_running("serve"), "serve")
    addr = flag(args(c), "--addr")
    assert addr, "serve without --addr listens on loopback only"
    host, port = addr.rsplit(":", 1)
    assert host == "0.0.0.0", f"--addr {addr}: unreachable from outside the pod"
    assert container_port(c, int(port)) == int(port), f"--addr port {port} is no containerPort"
    assert flag(args(c), "--slots") == "0"
    assert env(c, "RL_LAB_TOKEN") is not None, "the API is open without RL_LAB_TOKEN"


def test_the_api_probes_hit_healthz_on_a_declared_port():
    c = rl_lab_container(deployment_running("serve"), "serve")
    for probe in ("readinessProbe", "livenessProbe"):
        assert probe in c, f"the API has no {probe}"
    for d in deployments():
        for c in containers(d):
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe not in c:
                    continue
                http = c[probe].get("httpGet")
                assert http, f"{c['name']}: {probe} is not an HTTP GET"
                assert http["path"] == "/healthz", f"{c['name']}: {probe} on {http['path']}"
                assert container_port(c, http["port"]), f"{c['name']}: {probe} on undeclared port {http['port']}"


def test_the_service_sends_to_the_api_pods_only():
    services = objects("Service")
    assert len(services) == 1
    service = services[0]
    selector = service["spec"]["selector"]
    assert selector, "a Service without a selector selects no pods"
    api = deployment_running("serve")
    selected = [d["metadata"]["name"] for d in deployments()
                if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
    assert selected == [api["metadata"]["name"]], f"the Service selects {selected}"
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    c = rl_lab_container(api, "serve")
    for port in service["spec"]["ports"]:
        assert port["port"] == 8080
        assert container_port(c, port.get("targetPort", port["port"])) == 8080, (
            f"targetPort {port.get('targetPort')} is not the API container's port 8080")


# --- workers ----------------------------------------------------------------


def test_the_worker_is_named_by_its_pod_and_requests_a_core_per_slot():
    d = deployment_running("worker")
    c = rl_lab_container(d, "worker")
    arguments = args(c)
    assert flag(arguments, "--name") == "$(POD_NAME)"
    pod_name = env(c, "POD_NAME")
    assert pod_name and pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    slots = flag(arguments, "--slots")
    assert slots and int(slots) > 0
    assert cpu_cores(c["resources"]["requests"]["cpu"]) == int(slots), "cpu request is not --slots"
    assert "ports" not in c and "readinessProbe" not in c, "a worker listens on no port"
    assert env(c, "RL_LAB_TOKEN") is None, "workers serve no API and need no token"
    assert pod_spec(d)["terminationGracePeriodSeconds"] == 30


# --- the image --------------------------------------------------------------


def dockerfile_instructions():
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuations joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple((line.split(None, 1) + [""])[:2]) for line in lines if line and not line.startswith("#")]


def binary_name():
    cargo = (ROOT / "Cargo.toml").read_text()
    match = re.search(r'^\[\[bin\]\]\s*\nname\s*=\s*"([^"]+)"', cargo, re.M)
    assert match, "Cargo.toml has no [[bin]] name"
    return match[1]


def test_the_dockerfile_builds_the_binary_in_one_stage_and_runs_it_in_another():
    steps = dockerfile_instructions()
    stages = [a for i, a in steps if i.upper() == "FROM"]
    assert len(stages) == 2, f"expected a build stage and a runtime stage: {stages}"
    assert re.fullmatch(r"rust:1-bookworm\s+AS\s+builder", stages[0], re.I), stages[0]
    assert stages[1] == "debian:bookworm-slim"
    runtime = steps[[i for i, (ins, _) in enumerate(steps) if ins.upper() == "FROM"][1]:]

    binary = binary_name()
    assert binary == "rl-lab"
    assert any(i == "RUN" and f"cargo build --release --locked --bin {binary}" in a for i, a in steps)
    assert any(i == "COPY" and a.split() == ["--from=builder", f"/src/target/release/{binary}",
                                             "/usr/local/bin/rl-lab"] for i, a in runtime)
    assert any(i == "RUN" and "ca-certificates" in a for i, a in runtime)
    assert [a for i, a in runtime if i == "ENTRYPOINT"] == ['["rl-lab"]']

    users = [a for i, a in runtime if i == "USER"]
    assert users and re.fullmatch(r"[0-9]+:[0-9]+", users[-1]), "USER is not a numeric uid:gid"
    uid, gid = (int(n) for n in users[-1].split(":"))
    assert uid != 0, "the image runs as root"
    # The pods run as the image's user, and it owns the shared volume.
    for d in deployments():
        security = pod_spec(d).get("securityContext", {})
        assert security.get("runAsNonRoot") is True, d["metadata"]["name"]
        assert (security.get("runAsUser"), security.get("fsGroup")) == (uid, gid), d["metadata"]["name"]
