//! The axum routes over the core: `GET /link/{id}`, `POST /link/{id}` (the answers of the page
//! that asks for a connection's values) and `GET /callback`, to nest at the base URL's path.

use crate::{CallbackParams, Connect, ConnectError, Opening, ValuesForm};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

impl Connect {
    /// The routes: `GET /link/{id}` (a connect link), `POST /link/{id}` (the answers of the
    /// page that asks for a connection's values) and `GET /callback` (the provider's redirect
    /// back). Nest them at the base URL's path:
    /// `Router::new().nest("/connect", connect.router())`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/link/{id}", get(open).post(submit))
            .route("/callback", get(callback))
            .with_state(self.clone())
    }
}

async fn open(State(connect): State<Connect>, Path(id): Path<String>) -> Response {
    opening(connect.open(&id).await)
}

async fn submit(State(connect): State<Connect>, Path(id): Path<String>, body: Bytes) -> Response {
    let answers: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    opening(connect.submit(&id, &answers).await)
}

fn opening(result: Result<Opening, ConnectError>) -> Response {
    match result {
        Ok(Opening::Consent(opened)) => redirect(&opened.location, &opened.set_cookie),
        Ok(Opening::Ask(form)) => ask(&form),
        Err(e) => page(&e),
    }
}

/// The page that asks for a connection's values: one field per variable (a list where the
/// spec gives one), posted back to the link's own URL.
fn ask(form: &ValuesForm) -> Response {
    let mut fields = String::new();
    for variable in &form.fields {
        let name = escape(variable.name);
        let label = if variable.description.is_empty() {
            name.clone()
        } else {
            escape(variable.description)
        };
        let given = form.given.get(variable.name).or(variable.default);
        let input = if variable.choices.is_empty() {
            let required = if variable.required() { " required" } else { "" };
            let placeholder = variable
                .default
                .map(|d| format!(" placeholder=\"{}\"", escape(d)))
                .unwrap_or_default();
            format!(
                "<input id=\"{name}\" name=\"{name}\" value=\"{}\"{placeholder}{required}>",
                escape(form.given.get(variable.name).unwrap_or_default())
            )
        } else {
            let options: String = variable
                .choices
                .iter()
                .map(|choice| {
                    let selected = if given == Some(*choice) {
                        " selected"
                    } else {
                        ""
                    };
                    let choice = escape(choice);
                    format!("<option value=\"{choice}\"{selected}>{choice}</option>")
                })
                .collect();
            format!("<select id=\"{name}\" name=\"{name}\">{options}</select>")
        };
        fields.push_str(&format!(
            "<p><label for=\"{name}\">{label}</label><br>{input}</p>\n"
        ));
    }
    let error = form
        .error
        .as_deref()
        .map(|e| format!("<p id=\"error\">{}</p>\n", escape(e)))
        .unwrap_or_default();
    let provider = escape(&form.provider);
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Connect {provider}</title></head>\n<body><h1>Connect {provider}</h1>\n{error}<form method=\"post\">\n{fields}<button id=\"continue\" type=\"submit\">Continue</button>\n</form></body></html>\n"
    );
    let status = if form.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = (status, Html(body)).into_response();
    no_store(response.headers_mut());
    response
}

/// `text` safe inside HTML text and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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
        ConnectError::Link
        | ConnectError::Callback
        | ConnectError::ReturnUrlNotAllowed
        | ConnectError::Values(_) => StatusCode::BAD_REQUEST,
        ConnectError::UnknownProvider => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let text = escape(&error.to_string());
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
