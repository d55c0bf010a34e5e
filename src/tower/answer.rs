//! The answers the layer gives instead of calling the inner service.

use std::time::{Duration, SystemTime};

use http::header::RETRY_AFTER;
use http::{HeaderValue, Response, StatusCode};

use crate::{AsyncLock, Error};

/// An empty response with `status` and, when given, `Retry-After` in
/// whole seconds.
pub(crate) fn answer<B: Default>(status: StatusCode, retry_after: Option<u64>) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Seconds until the holder's lease runs out, rounded up, at least 1: when
/// a retry has a chance. A lock that is free by now, or a failed look,
/// gives 1.
pub(crate) async fn retry_after(lock: &AsyncLock) -> u64 {
    match lock.inspect().await {
        Ok(Some(info)) => {
            let left = info
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            seconds_up(left).max(1)
        }
        Ok(None) => 1,
        Err(error) => {
            tracing::warn!(lock = %lock.name(), %error, "could not read the holder's lease for Retry-After");
            1
        }
    }
}

fn seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The answer for a failed acquire: 500 for what only the program can fix
/// (a name the backend refuses, bad options, no backend), 503 otherwise.
pub(crate) fn failed<B: Default>(name: &str, error: &Error) -> Response<B> {
    match error {
        Error::InvalidName { .. } | Error::InvalidOptions { .. } | Error::NotConfigured => {
            tracing::error!(lock = %name, %error, "request lock: the layer is set up wrongly");
            answer(StatusCode::INTERNAL_SERVER_ERROR, None)
        }
        _ => {
            tracing::warn!(lock = %name, %error, "request lock: could not take the lock");
            answer(StatusCode::SERVICE_UNAVAILABLE, Some(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up() {
        assert_eq!(seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(seconds_up(Duration::from_secs(3)), 3);
        assert_eq!(seconds_up(Duration::from_millis(3001)), 4);
    }
}
