#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| socketio_exporter::fuzz::socketio_frame(data));
