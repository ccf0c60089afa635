use std::fmt;

/// An operator's error: a message the host reports with the plugin's name and
/// the input record it concerns. Any `std::error::Error` converts into it with `?`.
///
/// ```
/// use weir_sdk::Error;
/// let e = Error::msg("amount must be positive");
/// assert_eq!(e.to_string(), "amount must be positive");
/// let parsed: Result<u32, Error> = "x".parse::<u32>().map_err(Error::from);
/// assert!(parsed.is_err());
/// ```
pub struct Error(String);

impl Error {
    pub fn msg(message: impl fmt::Display) -> Self {
        Error(message.to_string())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Error(e.to_string())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.0)
    }
}
