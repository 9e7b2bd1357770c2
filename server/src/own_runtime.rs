//! A small async runtime of a component's own (the PostgreSQL store, the
//! object store), so that it keeps a synchronous interface: run threads and
//! blocking tasks call it as they call SQLite, and it may be called from an
//! async worker too.

use std::future::Future;

/// A two-thread runtime, shut down without waiting when dropped (the last
/// handle may go on an async thread, where waiting is refused).
pub struct OwnRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl OwnRuntime {
    /// Starts it; its threads are named `name`.
    pub fn new(name: &str) -> std::io::Result<OwnRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(OwnRuntime {
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime is there until it is dropped")
    }

    /// Spawns a task that lives as long as the runtime.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.runtime().spawn(task);
    }

    /// Runs the future `work` makes and waits for it, from any thread: a
    /// plain one, a blocking task's, or an async worker's (which is told it
    /// blocks).
    pub fn block<F: Future>(&self, work: impl FnOnce() -> F + Send) -> F::Output
    where
        F::Output: Send,
    {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let runtime = self.runtime();
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => runtime.block_on(work()),
            Ok(RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| runtime.block_on(work()))
            }
            // A single-threaded runtime cannot lend its thread: a scoped
            // thread waits instead.
            Ok(_) => std::thread::scope(|scope| {
                scope
                    .spawn(|| runtime.block_on(work()))
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
