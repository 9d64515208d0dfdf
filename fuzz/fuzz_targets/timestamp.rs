//! Date-times (`expires_at`): parse, and what is printed reads back as the same instant.
#![no_main]

use clavis::domain::time::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = Timestamp::parse(text) {
        let printed = t.to_string();
        assert_eq!(
            Timestamp::parse(&printed),
            Some(t),
            "{text:?} printed as {printed:?}"
        );
        assert_eq!(Timestamp::from_unix_millis(t.unix_millis()), Some(t));
    }
});
