//! Printing bytes as text without losing any: the one place escaping happens.

use core::fmt;

/// Shows bytes as text: valid UTF-8 as itself, every byte that is not part of
/// valid UTF-8 as `\xHH`. Nothing is dropped or replaced, so the bytes can be
/// told apart from the printed form. This is how a log line reaches a person.
#[derive(Clone, Copy, Debug)]
pub struct EscapeInvalid<'a>(pub &'a [u8]);

impl fmt::Display for EscapeInvalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// Shows bytes as the contents of a double-quoted scenario word: the escapes
/// `\n`, `\r`, `\t`, `\\`, `\"`, `\xHH` for invalid UTF-8 and for control
/// bytes, everything else as UTF-8. Parsing the output gives the bytes back.
#[derive(Clone, Copy, Debug)]
pub struct EscapeQuoted<'a>(pub &'a [u8]);

impl fmt::Display for EscapeQuoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\n' => f.write_str("\\n")?,
                    '\r' => f.write_str("\\r")?,
                    '\t' => f.write_str("\\t")?,
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(f, "\\x{:02x}", c as u32)?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn invalid_utf8_is_escaped_not_dropped() {
        assert_eq!(
            format!("{}", EscapeInvalid(b"\xffhello world!")),
            "\\xffhello world!"
        );
        assert_eq!(format!("{}", EscapeInvalid("héllo".as_bytes())), "héllo");
        assert_eq!(format!("{}", EscapeInvalid(b"a\xc3")), "a\\xc3");
    }

    #[test]
    fn quoted_form_escapes_specials() {
        assert_eq!(
            format!("{}", EscapeQuoted(b"a\"b\\c\n\t\r\x00\xff")),
            "a\\\"b\\\\c\\n\\t\\r\\x00\\xff"
        );
    }
}
