#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socketio_exporter::fuzz::config_toml(data));
