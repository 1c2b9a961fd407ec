//! The clock of the cached path: coarse on Linux, where a precise read costs tens of
//! nanoseconds on some virtual machines and the coarse one a few. Its resolution (a few
//! milliseconds) is far below any refresh skew.

use std::time::SystemTime;

/// The wall clock, to within a few milliseconds.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn coarse_now() -> SystemTime {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    let since_epoch = std::time::Duration::new(
        u64::try_from(now.tv_sec).unwrap_or_default(),
        u32::try_from(now.tv_nsec).unwrap_or_default(),
    );
    SystemTime::UNIX_EPOCH + since_epoch
}

/// The wall clock.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn coarse_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn agrees_with_the_precise_clock() {
        let precise = SystemTime::now();
        let coarse = coarse_now();
        let apart = precise
            .duration_since(coarse)
            .unwrap_or_else(|e| e.duration());
        assert!(apart < Duration::from_millis(50), "{apart:?}");
    }
}
