//! A customer connects their Easyship account in the browser, against a local mock of Easyship
//! that plays the provider's consent page. Run it with `cargo run --example connect` and open
//! the address it prints: connect (approve or deny at the mock), see the connection listed,
//! disconnect it. `PORT=8080` picks the port (default: a free one).

use axum::extract::{Form, State};
use axum::response::{Html, Redirect};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokenkit::{MemoryStore, PoolConfig, TokenPool};
use tokenkit_connect::{Connect, ConnectConfig};

type Pool = TokenPool<tokenkit_easyship::Client, MemoryStore>;

#[derive(Clone)]
struct App {
    connect: Connect,
    pool: Pool,
    home: String,
    next: Arc<AtomicU64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../specs/easyship.yaml");
    let mock = tokenkit_mock::MockServer::start(tokenkit_mock::load(spec)?).await?;
    mock.enforce_rotation(3600, Duration::ZERO);
    let consent = mock.serve_consent().ok_or("easyship has no consent flow")?;

    let port = std::env::var("PORT").unwrap_or_else(|_| "0".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let home = format!("http://{}", listener.local_addr()?);

    // The three lines an application writes: the pool, the flow over it, its routes.
    let client = tokenkit_easyship::Client::builder("cid_easyship_example", "cs_easyship_example")
        .base_url(mock.base_url())
        .authorization_endpoint(&consent)
        .build()?;
    let pool = TokenPool::new(client, MemoryStore::new(), PoolConfig::default())?;
    let connect = Connect::builder(ConnectConfig::new(
        format!("{home}/connect"),
        [home.clone()],
    ))
    .provider("easyship", pool.clone(), &["public.shipment:read"])
    .build()?;

    let app = App {
        connect: connect.clone(),
        pool,
        home: home.clone(),
        next: Arc::new(AtomicU64::new(1)),
    };
    let router = axum::Router::new()
        .route("/", get(page))
        .route("/start", post(start))
        .route("/disconnect", post(disconnect))
        .with_state(app)
        .nest("/connect", connect.router());
    println!("the application: {home}/ (Ctrl-C stops)");
    println!("the mock's consent page: {consent}");
    axum::serve(listener, router).await?;
    Ok(())
}

/// The application's page: its connections, a button to connect one more.
async fn page(State(app): State<App>) -> Html<String> {
    let connections = app
        .pool
        .connections()
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let rows: String = connections
        .iter()
        .map(|c| {
            format!(
                "<li>{c} <form method=\"post\" action=\"/disconnect\" style=\"display:inline\">\
                 <input type=\"hidden\" name=\"connection\" value=\"{c}\">\
                 <button>Disconnect</button></form></li>"
            )
        })
        .collect();
    Html(format!(
        "<!doctype html><title>Connect example</title><h1>Your integrations</h1>\
         <ul>{rows}</ul><form method=\"post\" action=\"/start\"><button id=\"connect\">Connect Easyship</button></form>"
    ))
}

/// Makes a connect link for the next customer and sends the browser there.
async fn start(State(app): State<App>) -> Redirect {
    let n = app.next.fetch_add(1, Ordering::Relaxed);
    let back = format!("{}/", app.home);
    match app
        .connect
        .link("easyship", &format!("customer-{n}"), &back)
    {
        Ok(link) => Redirect::to(&link),
        Err(_) => Redirect::to("/"),
    }
}

async fn disconnect(State(app): State<App>, Form(form): Form<HashMap<String, String>>) -> Redirect {
    if let Some(connection) = form.get("connection") {
        let _ = app.connect.disconnect("easyship", connection).await;
    }
    Redirect::to("/")
}
