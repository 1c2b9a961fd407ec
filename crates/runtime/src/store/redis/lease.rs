//! A held lock's key: extended and deleted by its token, in scripts that touch it only while
//! it is this holder's (renewal, confirmation and release are the shared
//! [`Lease`](crate::store::lease::Lease)'s).

use super::*;

/// What extending and releasing one lock need.
#[derive(Clone)]
pub(super) struct Lease {
    pub(super) connection: Connection,
    pub(super) lock_key: String,
    pub(super) token: String,
    pub(super) millis: u64,
}

impl crate::store::lease::Lease for Lease {
    fn ttl(&self) -> Duration {
        Duration::from_millis(self.millis)
    }

    fn extend(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let renewed: Result<i64, _> = script!(RENEW)
                .key(&self.lock_key)
                .arg(&self.token)
                .arg(self.millis)
                .invoke_async(&mut connection)
                .await;
            renewed.ok().map(|n| n == 1)
        })
    }

    fn try_release(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let released: Result<i64, _> = script!(RELEASE)
                .key(&self.lock_key)
                .arg(&self.token)
                .invoke_async(&mut connection)
                .await;
            released.is_ok()
        })
    }
}
