//! The axum routes over the core: `GET /link/{id}` and `GET /callback`, to nest at the base
//! URL's path.

use crate::{CallbackParams, Connect, ConnectError};
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

impl Connect {
    /// The routes: `GET /link/{id}` (a connect link) and `GET /callback` (the provider's
    /// redirect back). Nest them at the base URL's path:
    /// `Router::new().nest("/connect", connect.router())`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/link/{id}", get(open))
            .route("/callback", get(callback))
            .with_state(self.clone())
    }
}

async fn open(State(connect): State<Connect>, Path(id): Path<String>) -> Response {
    match connect.open(&id) {
        Ok(opened) => redirect(&opened.location, &opened.set_cookie),
        Err(e) => page(&e),
    }
}

async fn callback(
    State(connect): State<Connect>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = CallbackParams::from_query(query.as_deref().unwrap_or_default());
    let cookies: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let cookies = cookies.join("; ");
    match connect.callback(params, Some(&cookies)).await {
        Ok(finished) => redirect(&finished.location, &finished.clear_cookie),
        Err(e) => page(&e),
    }
}

/// `303 See Other` to `location`, setting `cookie`; neither cached nor sent on as a referrer
/// (the callback's own URL carries the code).
fn redirect(location: &str, cookie: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    let (Ok(location), Ok(cookie)) = (
        HeaderValue::from_str(location),
        HeaderValue::from_str(cookie),
    ) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    headers.insert(header::LOCATION, location);
    headers.insert(header::SET_COOKIE, cookie);
    no_store(headers);
    response
}

/// A short page for a link or callback this flow cannot answer.
fn page(error: &ConnectError) -> Response {
    let status = match error {
        ConnectError::Link | ConnectError::Callback | ConnectError::ReturnUrlNotAllowed => {
            StatusCode::BAD_REQUEST
        }
        ConnectError::UnknownProvider => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let text = error.to_string().replace('&', "&amp;").replace('<', "&lt;");
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Connect</title></head>\n<body><h1>This connect cannot go on</h1>\n<p id=\"error\">{text}</p>\n<p>Start again from the application.</p></body></html>\n"
    );
    let mut response = (status, Html(body)).into_response();
    no_store(response.headers_mut());
    response
}

fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}
