//! Waiting for another holder's refresh: a [`ChangeWatch`] wakes a waiter when the store says
//! a key's lock was released or its set saved (PostgreSQL's `LISTEN/NOTIFY`), or after its
//! poll interval at the latest, which is all a store that says nothing gives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// How long a waiter whose store announces changes waits at most, whatever its poll interval:
/// the poll then only covers what no announcement says (a holder that died with the lock,
/// whose lease runs out).
pub(crate) const ANNOUNCED_POLL: Duration = Duration::from_secs(1);

/// A waiter's view of one key's changes, made before it looks at the key so that a change
/// between the look and the wait is not missed ([`crate::TokenStore::watch`]).
pub struct ChangeWatch {
    key: String,
    changes: Option<broadcast::Receiver<Arc<str>>>,
    /// Whether the feed is live (its connection listening): a waiter polls as usual otherwise.
    live: Arc<AtomicBool>,
}

impl ChangeWatch {
    /// A watch that only waits out its poll interval: for stores that announce nothing.
    pub fn polling() -> Self {
        Self {
            key: String::new(),
            changes: None,
            live: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A watch of `key` on a feed of changed keys, announced while `live`.
    #[cfg(feature = "postgres")]
    pub(crate) fn of(
        key: &str,
        changes: broadcast::Receiver<Arc<str>>,
        live: Arc<AtomicBool>,
    ) -> Self {
        Self {
            key: key.to_owned(),
            changes: Some(changes),
            live,
        }
    }

    /// Waits until the key may have changed since the watch was made (or the last wait), or
    /// `poll` passed, or, while the store announces changes, a second if longer (the
    /// announcement wakes it sooner). A feed that fell behind counts as a change: the waiter
    /// looks.
    pub async fn wait(&mut self, poll: Duration) {
        let Some(changes) = self.changes.as_mut() else {
            tokio::time::sleep(poll).await;
            return;
        };
        let poll = if self.live.load(Ordering::Acquire) {
            poll.max(ANNOUNCED_POLL)
        } else {
            poll
        };
        let key = self.key.as_str();
        let changed = async {
            loop {
                match changes.recv().await {
                    Ok(changed) if *changed == *key => return,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(poll, changed).await;
    }
}

impl std::fmt::Debug for ChangeWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeWatch")
            .field("notified", &self.changes.is_some())
            .finish()
    }
}
