//! Fuzz bodies, compiled only with the `fuzzing` feature so that `fuzz/`
//! stays a thin shim and the bodies always compile and run as unit tests.

use crate::config;
use crate::protocol;

/// Parses arbitrary bytes as a configuration file.
///
/// Bytes that are not UTF-8 are skipped: the command reads the file as a
/// string and refuses it before parsing. Panics only on a bug: parsing must
/// give a configuration or an error located inside the file (line between 1
/// and the number of lines, column at least 1) whose message is one line.
pub fn config_parser(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = config::parse(source, "fuzz.toml") {
        let lines = source.split('\n').count();
        assert!(
            error.line >= 1 && error.line <= lines,
            "line {} outside 1..={lines}: {error}",
            error.line
        );
        assert!(error.column >= 1, "column 0: {error}");
        assert!(
            !error.message.contains('\n'),
            "a message on two lines: {error}"
        );
        assert!(error.to_string().starts_with("fuzz.toml:"), "{error}");
    }
}

/// Parses arbitrary bytes as a control request line.
///
/// Panics only on a bug: parsing gives a request or an error, and a reply
/// to either is one line of JSON that parses back, with the request's id.
pub fn control_request(data: &[u8]) {
    let (id, reply) = match protocol::parse_request(data) {
        Ok(request) => {
            assert!(data.len() <= protocol::MAX_REQUEST_BYTES);
            let name = request.op.name();
            (
                request.id.clone(),
                protocol::ok_line(&request.id, name.into()),
            )
        }
        Err((id, error)) => {
            assert!(
                !error.message.contains('\n'),
                "a message on two lines: {error}"
            );
            let line = protocol::error_line(&id, &error);
            (id, line)
        }
    };
    assert_eq!(reply.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(reply.ends_with(b"\n"));
    let back: serde_json::Value = serde_json::from_slice(&reply).expect("a reply is JSON");
    assert_eq!(back["id"], id);
}

#[cfg(test)]
mod tests {
    use super::config_parser;

    /// The examples, cut at every character boundary, and fixed odd inputs.
    #[test]
    fn the_fuzz_body_takes_the_examples_and_fixed_inputs() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).expect("examples/") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "toml") {
                continue;
            }
            let source = std::fs::read(&path).expect("readable");
            config_parser(&source);
            for cut in 0..source.len() {
                config_parser(&source[..cut]);
            }
            seen += 1;
        }
        assert!(seen > 0, "no examples in {dir}");
        let inputs: &[&[u8]] = &[
            b"",
            b"\n\n\n",
            b"\xff\xfe",
            b"[",
            b"[processes.a]\n",
            b"[processes.a]\nargv = []\n",
            b"[processes.a]\nargv = [\"x\"]\nuid = -1\n",
            b"[settings]\nthreshold = nan\n",
            b"[settings]\nkill-time = 1e400\n",
            b"a = \"\\u{0}\"\n\r\n\r",
            b"x = 1\ny = 2\nz = \"unterminated",
        ];
        for input in inputs {
            config_parser(input);
        }
    }

    /// Found by the smoke run: a numeric id of 46 digits came back as
    /// another number, one unit in the last place off, because the
    /// request's parse and the reply's reparse each rounded it.
    #[test]
    fn a_long_numeric_id_comes_back_as_sent() {
        super::control_request(
            b"{\"v\":1999999999999,\"id\":1999999999999999999999999999999999999999999999,\"op\":\"ve<<<<<<<<<<\"}",
        );
    }

    #[test]
    fn the_control_body_takes_fixed_inputs() {
        for input in [
            &b""[..],
            b"{}",
            b"{\"v\":1,\"id\":[1,{}],\"op\":\"status\"}",
            b"{\"v\":1,\"op\":\"logs\",\"name\":\"a\\n\",\"lines\":1e3}",
            b"{\"v\":1,\"op\":\"signal\",\"signal\":\"KILL\",\"all\":true}",
            b"\xff\xfe",
            &[b'{'; 70_000][..],
        ] {
            super::control_request(input);
        }
    }
}
