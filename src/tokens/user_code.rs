//! RFC 8628 §6.1 user codes: what a person types on a second screen to approve a device. Eight
//! characters from a 20-letter alphabet without vowels (no words, and no 0/O or 1/I to confuse),
//! shown as `XXXX-XXXX`, accepted in any case, with or without the dash and spaces. 20^8 ≈ 2^34.6
//! values: enough only together with a short lifetime and the throttling of wrong codes (§5.1).
//! A code is stored only as a keyed, tenant-bound hash (`MasterKey::user_code_hash`).

/// RFC 8628 §3.4: the `grant_type` a device polls the token endpoint with.
pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// RFC 8628 §6.1: the consonants of the Latin alphabet, less the vowel-like Y.
pub const ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Characters in a code (the dash is not one of them).
pub const LEN: usize = 8;

/// A well-formed user code: `LEN` letters of `ALPHABET`, upper case.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCode([u8; LEN]);

/// A user code is a credential while it lives: never in a log.
impl std::fmt::Debug for UserCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserCode(..)")
    }
}

impl UserCode {
    /// A fresh code, every letter uniformly from the alphabet (rejection sampling: a byte of
    /// 240 or more would make the first 16 letters likelier, so it is drawn again).
    pub fn generate() -> Self {
        let mut code = [0u8; LEN];
        let mut filled = 0;
        while filled < LEN {
            for b in crate::secrets::random_bytes::<16>() {
                if filled == LEN {
                    break;
                }
                if b < 240
                    && let (Some(slot), Some(letter)) = (
                        code.get_mut(filled),
                        ALPHABET.get(usize::from(b) % ALPHABET.len()),
                    )
                {
                    *slot = *letter;
                    filled += 1;
                }
            }
        }
        Self(code)
    }

    /// What the user typed, if it is a code: letters of the alphabet in either case; dashes and
    /// white space are ignored (RFC 8628 §6.1: "the user code … should be case-insensitive" and
    /// punctuation is only for readability).
    pub fn parse(input: &str) -> Option<Self> {
        if input.len() > 64 {
            return None;
        }
        let mut code = [0u8; LEN];
        let mut n = 0;
        for c in input.bytes() {
            if c == b'-' || c.is_ascii_whitespace() {
                continue;
            }
            let upper = c.to_ascii_uppercase();
            if !ALPHABET.contains(&upper) {
                return None;
            }
            *code.get_mut(n)? = upper;
            n += 1;
        }
        (n == LEN).then_some(Self(code))
    }

    /// The code as stored and hashed: the letters alone.
    pub fn as_str(&self) -> &str {
        // Only alphabet letters (ASCII) are ever stored in the array.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The code as shown: `XXXX-XXXX`.
    pub fn display(&self) -> String {
        let s = self.as_str();
        let (a, b) = s.split_at(LEN / 2);
        format!("{a}-{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_code_is_shown_as_two_groups_and_reads_back_in_any_form() {
        for _ in 0..200 {
            let code = UserCode::generate();
            let shown = code.display();
            assert_eq!(shown.len(), LEN + 1);
            assert_eq!(shown.as_bytes()[4], b'-');
            assert!(code.as_str().bytes().all(|b| ALPHABET.contains(&b)));
            assert_eq!(UserCode::parse(&shown), Some(code.clone()));
            assert_eq!(UserCode::parse(&shown.to_lowercase()), Some(code.clone()));
            assert_eq!(UserCode::parse(code.as_str()), Some(code.clone()));
            assert_eq!(
                UserCode::parse(&format!(" {} ", shown.replace('-', " "))),
                Some(code)
            );
        }
    }

    #[test]
    fn anything_but_eight_letters_of_the_alphabet_is_no_code() {
        for bad in [
            "",
            "BCDF-GHJ",
            "BCDF-GHJKL",
            "BCDA-GHJK",
            "BCD0-GHJK",
            "BCDF_GHJK",
            "BCDFGHJKY",
            "ÄCDF-GHJK",
            "BCDF-GHJK-B",
        ] {
            assert_eq!(UserCode::parse(bad), None, "{bad:?}");
        }
        assert_eq!(UserCode::parse(&"-".repeat(100)), None);
    }

    #[test]
    fn every_letter_of_the_alphabet_turns_up_and_none_other() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            seen.extend(UserCode::generate().as_str().bytes());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn a_user_code_stays_out_of_debug_output() {
        let code = UserCode::parse("BCDF-GHJK").unwrap();
        assert_eq!(format!("{code:?}"), "UserCode(..)");
    }
}
