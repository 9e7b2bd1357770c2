import test_api
test_api.port = "43103"
