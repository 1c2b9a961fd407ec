//! The shared conformance suite: one set of cases, run against every generated client through a
//! mock server derived from the client's own spec.
//!
//! A provider passes when its client does exactly what its spec says, and turns everything else
//! a server can do into the right typed error. `cargo xtask gen` writes one [`suite!`] line per
//! spec into the `tokenkit-suite` crate, so a new spec joins with no Rust written by hand.
//!
//! Each case is a plain async function returning `Err` with a reason, so the suite can also be
//! run against a deliberately wrong client and be seen to fail.

pub mod cases;
pub mod support;

pub use support::{Call, GrantType, Subject, signing_key};

/// Declares one `#[tokio::test]` per case for a provider: its name, its spec (relative to the
/// workspace root) and a function that builds its client; then, for each grant the spec maps
/// (`grants: module = GrantType, …`), a module running the cases that apply to a grant. For a
/// provider with grants only (`only grants: …`), the first grant takes the refresh's place:
/// every case runs on it, with `refresh_is_refused`.
#[macro_export]
macro_rules! suite {
    (@main $name:literal, $spec:literal, $build:path, $call:expr; $($extra:ident),*) => {
        fn subject() -> $crate::Subject {
            $crate::Subject {
                name: $name,
                spec: $spec,
                build: $build,
                call: $call,
            }
        }

        $crate::cases_for!(
            subject;
            success,
            request_conforms,
            documented_errors,
            failure_inside_success_status,
            every_rule_trips,
            undocumented_status,
            malformed_body,
            empty_body,
            truncated_body,
            wrong_content_type,
            oversized_declared_body,
            oversized_streamed_body,
            timeout,
            connection_reset,
            no_secret_in_output,
            missing_refresh_token,
            empty_token,
            client_is_shareable,
            fresh_values,
            client_assertion
            $(, $extra)*
        );
    };
    ($name:literal, $spec:literal, $build:path; only grants: $first:ident = $first_kind:ident $(, $module:ident = $kind:ident)*) => {
        $crate::suite!(@grants $($module = $kind),*);
        $crate::suite!(
            @main $name, $spec, $build, $crate::Call::Grant($crate::GrantType::$first_kind);
            refresh_is_refused
        );
    };
    ($name:literal, $spec:literal, $build:path $(; grants: $($module:ident = $kind:ident),*)?) => {
        $($crate::suite!(@grants $($module = $kind),*);)?
        $crate::suite!(@main $name, $spec, $build, $crate::Call::Refresh;);
    };
    (@grants $($module:ident = $kind:ident),*) => {
        $(
            /// The cases for this grant.
            mod $module {
                fn subject() -> $crate::Subject {
                    $crate::Subject {
                        call: $crate::Call::Grant($crate::GrantType::$kind),
                        ..super::subject()
                    }
                }

                $crate::cases_for!(
                    subject;
                    success,
                    request_conforms,
                    documented_errors,
                    failure_inside_success_status,
                    every_rule_trips,
                    undocumented_status,
                    malformed_body,
                    truncated_body,
                    connection_reset,
                    no_secret_in_output,
                    missing_refresh_token,
                    empty_token,
                    fresh_values,
                    client_assertion
                );
            }
        )*
    };
}

/// One test per named case; used by [`suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! cases_for {
    ($subject:ident; $($case:ident),*) => {
        $(
            #[tokio::test]
            async fn $case() {
                if let Err(reason) = $crate::cases::$case(&$subject()).await {
                    panic!("{} fails `{}`: {reason}", $subject().name, stringify!($case));
                }
            }
        )*
    };
}

/// The README's examples compile.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
mod readme {}
