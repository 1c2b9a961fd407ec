//! A held lock's row: extended and deleted by its fencing token (renewal, confirmation and
//! release are the shared [`Lease`](crate::store::lease::Lease)'s).

use super::{PostgresStore, sql};
use crate::client::BoxFuture;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// What extending and releasing one lease row need.
#[derive(Clone)]
pub(super) struct Lease {
    pub(super) store: PostgresStore,
    pub(super) key: String,
    pub(super) fence: String,
    pub(super) ttl: Duration,
}

impl Lease {
    pub(super) fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

impl crate::store::lease::Lease for Lease {
    fn ttl(&self) -> Duration {
        self.ttl
    }

    fn extend(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async move {
            let params: [&(dyn ToSql + Sync); 3] = [&self.key, &self.fence, &self.ttl_ms()];
            let rows = self.store.query(sql::EXTEND, &params).await.ok()?.ok()?;
            Some(!rows.is_empty())
        })
    }

    fn try_release(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let params: [&(dyn ToSql + Sync); 2] = [&self.key, &self.fence];
            matches!(self.store.query(sql::RELEASE, &params).await, Ok(Ok(_)))
        })
    }
}
