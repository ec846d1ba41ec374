//! Graceful shutdown: one trigger, any number of listeners.
//!
//! The binary creates a [`ShutdownTrigger`] and hands a [`Shutdown`] to every long-running
//! task. A task selects on [`Shutdown::recv`] beside its own work: once the trigger fires, it stops
//! taking new work, finishes what it holds and returns.

use tokio::sync::watch;

/// Fires the shutdown signal. Dropping it fires the signal too.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Listens for the shutdown signal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    /// A new trigger with its first listener.
    pub fn new() -> (Self, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Self { tx }, Shutdown { rx })
    }

    /// Signals every listener to shut down.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// Whether the signal has fired.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until the signal fires (or its trigger is dropped).
    pub async fn recv(&mut self) {
        // An error means the trigger is gone, which also means shut down.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_see_the_signal() {
        let (trigger, mut shutdown) = ShutdownTrigger::new();
        let mut other = shutdown.clone();
        assert!(!shutdown.is_shutdown());
        trigger.fire();
        shutdown.recv().await;
        other.recv().await;
        assert!(other.is_shutdown());
    }

    #[tokio::test]
    async fn dropping_the_trigger_shuts_down() {
        let (trigger, mut shutdown) = ShutdownTrigger::new();
        drop(trigger);
        shutdown.recv().await;
    }
}
