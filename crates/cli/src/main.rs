//! `tokenkit`: an operator's view of a token store. Lists connections with their state, shows
//! one, removes one, exports the list as JSON, and moves connections between stores. It never
//! prints a token, a secret or a store's password.
//!
//! Stores by URL: `file:///var/lib/app/tokens` (a [`FileStore`] directory),
//! `redis://host:6379/?prefix=tokens` (`rediss://` for TLS; the prefix the application's
//! `RedisStore` uses), `postgres://user@host/db` (`postgresql://`, and any libpq string). A
//! store the application seals with an [`EncryptedStore`] is read with its keys
//! (`--key ID=FILE`, the current one first), each read from a file, never from the command
//! line, where other users of the machine could see it.

mod keys;
mod view;

use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use tokenkit::{EncryptedStore, FileStore, PostgresStore, RedisStore, StoreError, TokenStore};

const USAGE: &str = "\
usage: tokenkit [--key ID=FILE]... [--to-key ID=FILE]... <store-url> <command>

commands:
  list [PREFIX]            each connection: key, state, version, the refresh token's life left
  show KEY                 one connection, as JSON
  export [PREFIX]          every connection, as a JSON array
  remove KEY               removes a connection (under its lock; its version stays retired)
  move TO-URL [PREFIX]     copies every connection to another store (resumable)

store URLs: file:///dir, redis://host/?prefix=P, rediss://…, postgres://user@host/db
--key ID=FILE: the store is an EncryptedStore sealed with key ID (FILE: 32 bytes, or 64 hex
digits); repeat for older keys, the current one first. --to-key: the same for move's target.
states: healthy, refreshing (access token expired), expiring (refresh token dies within a
day, or a keeper gave up), in flight (a refresh was sent, no answer stored), dead, sealed
(an EncryptedStore's set read without --key).
Nothing printed ever holds a token.";

/// The lock a removal or a move takes, as long as the manager's default.
const LOCK_TTL: Duration = Duration::from_secs(30);

/// Any store the runtime has, opened from a URL, plain or sealed.
enum Store {
    File(FileStore),
    Redis(RedisStore),
    Postgres(PostgresStore),
    SealedFile(EncryptedStore<FileStore>),
    SealedRedis(EncryptedStore<RedisStore>),
    SealedPostgres(EncryptedStore<PostgresStore>),
}

macro_rules! with_store {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            Store::File($s) => $body,
            Store::Redis($s) => $body,
            Store::Postgres($s) => $body,
            Store::SealedFile($s) => $body,
            Store::SealedRedis($s) => $body,
            Store::SealedPostgres($s) => $body,
        }
    };
}

impl Store {
    /// The store at `url`, sealed with `keys` when there are any (the current one first).
    async fn open_with(url: &str, keys: Vec<tokenkit::EncryptionKey>) -> Result<Self, String> {
        let plain = Self::open(url).await?;
        let mut keys = keys.into_iter();
        let Some(current) = keys.next() else {
            return Ok(plain);
        };
        fn sealed<S: TokenStore>(
            store: S,
            current: tokenkit::EncryptionKey,
            older: impl Iterator<Item = tokenkit::EncryptionKey>,
        ) -> EncryptedStore<S> {
            older.fold(
                EncryptedStore::new(store, current),
                EncryptedStore::with_previous,
            )
        }
        Ok(match plain {
            Store::File(s) => Store::SealedFile(sealed(s, current, keys)),
            Store::Redis(s) => Store::SealedRedis(sealed(s, current, keys)),
            Store::Postgres(s) => Store::SealedPostgres(sealed(s, current, keys)),
            sealed_already => sealed_already,
        })
    }

    async fn open(url: &str) -> Result<Self, String> {
        let fail = |e: StoreError| e.to_string();
        if let Some(path) = url.strip_prefix("file://") {
            return FileStore::new(path).map(Store::File).map_err(fail);
        }
        if url.starts_with("redis://") || url.starts_with("rediss://") {
            let (base, prefix) = match url.split_once("?prefix=") {
                Some((base, prefix)) => (base.to_owned(), prefix.to_owned()),
                None => (url.to_owned(), "tokenkit".to_owned()),
            };
            let store = RedisStore::connect(&base, prefix).await.map_err(fail)?;
            return Ok(Store::Redis(store));
        }
        if url.starts_with("postgres://")
            || url.starts_with("postgresql://")
            || url.contains("host=")
        {
            return PostgresStore::connect(url)
                .await
                .map(Store::Postgres)
                .map_err(fail);
        }
        Err("unknown store URL: file://, redis://, rediss:// or postgres://".to_owned())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match run(&args).await {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("tokenkit: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; what it prints.
async fn run(args: &[&str]) -> Result<String, String> {
    if matches!(args.first(), Some(&("-h" | "--help" | "help"))) {
        return Ok(USAGE.to_owned());
    }
    let (keys, to_keys, args) = keys::options(args)?;
    let [url, command, rest @ ..] = args.as_slice() else {
        return Err(USAGE.to_owned());
    };
    let store = Store::open_with(url, keys).await?;
    let now = SystemTime::now();
    match (*command, rest) {
        ("list", prefix) => {
            with_store!(&store, s => list(s, prefix.first().copied().unwrap_or(""), now).await)
        }
        ("export", prefix) => {
            with_store!(&store, s => export(s, prefix.first().copied().unwrap_or(""), now).await)
        }
        ("show", [key]) => with_store!(&store, s => show(s, key, now).await),
        ("remove", [key]) => with_store!(&store, s => remove(s, key).await),
        ("move", [to, prefix @ ..]) => {
            let target = Store::open_with(to, to_keys).await?;
            let prefix = prefix.first().copied().unwrap_or("");
            with_store!(&store, s => with_store!(&target, t => move_to(s, t, prefix).await))
        }
        _ => Err(USAGE.to_owned()),
    }
}

async fn keys(store: &impl TokenStore, prefix: &str) -> Result<Vec<String>, String> {
    let mut keys = store
        .list(prefix)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("this store cannot list its connections")?;
    keys.sort();
    Ok(keys)
}

async fn list(store: &impl TokenStore, prefix: &str, now: SystemTime) -> Result<String, String> {
    let mut lines = vec!["key\tstate\tversion\trefresh token left".to_owned()];
    for key in keys(store, prefix).await? {
        if let Some(set) = store.load(&key).await.map_err(|e| e.to_string())? {
            lines.push(view::line_of(&key, &set, now));
        }
    }
    Ok(lines.join("\n"))
}

async fn export(store: &impl TokenStore, prefix: &str, now: SystemTime) -> Result<String, String> {
    let mut all = Vec::new();
    for key in keys(store, prefix).await? {
        if let Some(set) = store.load(&key).await.map_err(|e| e.to_string())? {
            all.push(view::json_of(&key, &set, now));
        }
    }
    serde_json::to_string_pretty(&all).map_err(|e| e.to_string())
}

async fn show(store: &impl TokenStore, key: &str, now: SystemTime) -> Result<String, String> {
    match store.load(key).await.map_err(|e| e.to_string())? {
        Some(set) => {
            serde_json::to_string_pretty(&view::json_of(key, &set, now)).map_err(|e| e.to_string())
        }
        None => Err(format!("no connection {key:?}")),
    }
}

async fn remove(store: &impl TokenStore, key: &str) -> Result<String, String> {
    let lock = store
        .try_lock(key, LOCK_TTL)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{key:?} is being refreshed: try again"))?;
    let removed = store.delete(key, &lock).await;
    lock.release().await;
    match removed.map_err(|e| e.to_string())? {
        tokenkit::Saved::LockLost => Err(format!("lost the lock of {key:?}: try again")),
        _ => Ok(format!("removed {key}")),
    }
}

async fn move_to(
    from: &impl TokenStore,
    to: &impl TokenStore,
    prefix: &str,
) -> Result<String, String> {
    let done = tokenkit::copy_connections(from, to, prefix, LOCK_TTL)
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "copied {}, already there {}, removed at the target {}, gone {}",
        done.copied, done.already_there, done.removed_at_target, done.gone
    ))
}
