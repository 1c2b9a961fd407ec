//! Values some providers require fresh on every token request (a request id, a nonce, a
//! timestamp), made when the request is sent, never baked into a client.

use crate::error::RefreshError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a spec's `generate` entry asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Generate {
    /// A random (version 4) UUID, `8-4-4-4-12` lower-case hex.
    Uuid,
    /// 16 random bytes, base64url without padding (22 characters).
    Nonce,
    /// The current Unix time in seconds.
    UnixSeconds,
    /// The current Unix time in milliseconds.
    UnixMilliseconds,
    /// The current time, RFC 3339 in UTC (`2026-11-26T14:09:08Z`).
    DateTime,
}

impl Generate {
    /// A fresh value: a number for the Unix times unless `as_text`, text otherwise. Fails only
    /// when the operating system gives no random bytes: the request is then not sent.
    pub fn value(self, as_text: bool) -> Result<Value, RefreshError> {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let number = |n: u128| {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            if as_text {
                Value::String(n.to_string())
            } else {
                Value::from(n)
            }
        };
        Ok(match self {
            Self::Uuid => Value::String(uuid_v4(random::<16>()?)),
            Self::Nonce => Value::String(URL_SAFE_NO_PAD.encode(random::<16>()?)),
            Self::UnixSeconds => number(u128::from(since_epoch.as_secs())),
            Self::UnixMilliseconds => number(since_epoch.as_millis()),
            Self::DateTime => Value::String(rfc3339_utc(since_epoch.as_secs())),
        })
    }

    /// A fresh value as text (for a header or a query parameter).
    pub fn text(self) -> Result<String, RefreshError> {
        Ok(match self.value(true)? {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }
}

fn random<const N: usize>() -> Result<[u8; N], RefreshError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| RefreshError::not_sent())?;
    Ok(bytes)
}

/// RFC 9562 §5.4: version 4 in the high nibble of byte 6, variant `10` in byte 8.
fn uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Unix seconds as RFC 3339 in UTC (days to a civil date: Howard Hinnant's algorithm).
fn rfc3339_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::parse_rfc3339;
    use std::time::Duration;

    #[test]
    fn uuids_are_version_4_and_fresh() {
        let a = Generate::Uuid.text().unwrap();
        let b = Generate::Uuid.text().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
        assert_eq!(a.matches('-').count(), 4);
    }

    #[test]
    fn nonces_are_fresh() {
        let a = Generate::Nonce.text().unwrap();
        assert_eq!(a.len(), 22);
        assert_ne!(a, Generate::Nonce.text().unwrap());
    }

    #[test]
    fn times_are_now_in_each_form() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let secs = Generate::UnixSeconds
            .value(false)
            .unwrap()
            .as_u64()
            .unwrap();
        assert!(secs.abs_diff(now.as_secs()) <= 2);
        let text = Generate::UnixSeconds.text().unwrap();
        assert!(text.parse::<u64>().unwrap().abs_diff(now.as_secs()) <= 2);
        let millis = Generate::UnixMilliseconds
            .value(false)
            .unwrap()
            .as_u64()
            .unwrap();
        assert!(u128::from(millis).abs_diff(now.as_millis()) <= 2000);
        let date = Generate::DateTime.text().unwrap();
        let parsed = parse_rfc3339(&date).unwrap();
        let diff = parsed
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            .abs_diff(now.as_secs());
        assert!(diff <= 2, "{date}");
    }

    #[test]
    fn civil_dates_round_trip() {
        for secs in [
            0u64,
            951_782_400,
            1_709_251_199,
            4_102_444_800,
            253_402_300_799,
        ] {
            let text = rfc3339_utc(secs);
            let back = parse_rfc3339(&text).unwrap();
            assert_eq!(back, UNIX_EPOCH + Duration::from_secs(secs), "{text}");
        }
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
