//! `LISTEN/NOTIFY`: one connection per store listens on [`sql::CHANNEL`] and passes each
//! notified key to the store's watches, so that a process waiting for another's refresh wakes
//! when the lock it found taken is released or the set saved (their statements notify where
//! the lease is marked waited for), instead of polling.
//! While the connection is down a watch waits out its poll interval, as without it; the
//! connection is made again after a second.

use super::sql;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Config, Socket};

/// How many notified keys a watch may fall behind before it looks anyway.
const BACKLOG: usize = 4096;

/// How long after a lost connection the listener connects again.
const RECONNECT: Duration = Duration::from_secs(1);

/// The TLS the store's pool uses, for the listener's own connection.
#[derive(Clone)]
pub(super) enum Tls {
    None,
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// The feed of notified keys; its task ends when the last clone of the store is dropped.
pub(super) struct Listener {
    changes: broadcast::Sender<Arc<str>>,
    /// Whether the connection is listening now.
    live: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Starts listening with `config` (the pool's) over `tls`.
    pub(super) fn start(config: Config, tls: Tls) -> Self {
        let (changes, _) = broadcast::channel(BACKLOG);
        let live = Arc::new(AtomicBool::new(false));
        let (feed, listening) = (changes.clone(), Arc::clone(&live));
        let task = tokio::spawn(async move {
            loop {
                // The error is the connection's: the watches poll meanwhile.
                let _ = match &tls {
                    Tls::None => session(&config, tokio_postgres::NoTls, &feed, &listening).await,
                    Tls::Rustls(t) => session(&config, t.clone(), &feed, &listening).await,
                };
                listening.store(false, Ordering::Release);
                tokio::time::sleep(RECONNECT).await;
            }
        });
        Self {
            changes,
            live,
            task,
        }
    }

    /// A watch of `key`: every key notified from now on.
    pub(super) fn watch(&self, key: &str) -> crate::store::ChangeWatch {
        crate::store::ChangeWatch::of(key, self.changes.subscribe(), Arc::clone(&self.live))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One listening connection, until it fails.
async fn session<T>(
    config: &Config,
    tls: T,
    feed: &broadcast::Sender<Arc<str>>,
    live: &AtomicBool,
) -> Result<(), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
{
    let (client, mut connection) = config.connect(tls).await?;
    // The connection is driven here: its messages carry the notifications, and its I/O the
    // LISTEN below.
    let messages = async {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message? {
                let _ = feed.send(Arc::from(n.payload()));
            }
        }
        Ok(())
    };
    tokio::pin!(messages);
    let statement = format!("LISTEN {}", sql::CHANNEL);
    let listen = client.batch_execute(&statement);
    tokio::select! {
        ended = &mut messages => return ended,
        listening = listen => listening?,
    }
    live.store(true, Ordering::Release);
    messages.await
}
