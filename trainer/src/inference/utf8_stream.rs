//! Text from a stream of byte pieces that may cut a character in two (a
//! byte-level token can hold half of a UTF-8 sequence).

/// Collects bytes and hands out the complete characters so far.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// An empty stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `bytes` and returns the text that is now complete; a byte
    /// sequence that can never become valid UTF-8 becomes U+FFFD; an
    /// unfinished character at the end waits for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).expect("checked valid"));
                    match error.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        let kept = rest.len();
        self.pending.drain(..self.pending.len() - kept);
        text
    }

    /// The text of the bytes still waiting (an unfinished character at the
    /// end of the stream becomes U+FFFD); the stream is empty afterwards.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_cut_between_pieces_come_out_whole_once_complete() {
        let text = "a€b😀";
        let bytes = text.as_bytes();
        // Every split into single bytes gives the text back exactly.
        let mut stream = Utf8Stream::new();
        let mut out = String::new();
        let mut emitted_incomplete = false;
        for b in bytes {
            let piece = stream.push(&[*b]);
            emitted_incomplete |= piece.contains(char::REPLACEMENT_CHARACTER);
            out.push_str(&piece);
        }
        out.push_str(&stream.finish());
        assert_eq!(out, text);
        assert!(!emitted_incomplete);
        // The euro sign appears only with its third byte.
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(&bytes[..2]), "a");
        assert_eq!(stream.push(&bytes[2..3]), "");
        assert_eq!(stream.push(&bytes[3..5]), "€b");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(&[b'x', 0xFF, b'y']), "x\u{FFFD}y");
        // An unfinished sequence at the end of the stream.
        assert_eq!(stream.push(&[0xE2, 0x82]), "");
        assert_eq!(stream.finish(), "\u{FFFD}");
        assert_eq!(stream.finish(), "");
    }
}
