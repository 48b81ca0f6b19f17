//! Why an attempt failed: the classes the API reports (`error` on an attempt, `last_error` on
//! a delivery), typed once, so a stored value is checked where it is read.

/// Why an attempt failed, as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Timeout,
    Connect,
    Dns,
    Tls,
    BlockedAddress,
    Redirect,
    HttpStatus,
    /// No signing secret could be decrypted (a wrong `HERALD_MASTER_KEY`): nothing was sent.
    Signing,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::BlockedAddress => "blocked_address",
            Self::Redirect => "redirect",
            Self::HttpStatus => "http_status",
            Self::Signing => "signing",
        }
    }
}

impl ErrorClass {
    const ALL: [Self; 8] = [
        Self::Timeout,
        Self::Connect,
        Self::Dns,
        Self::Tls,
        Self::BlockedAddress,
        Self::Redirect,
        Self::HttpStatus,
        Self::Signing,
    ];

    /// The class of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.as_str() == name)
    }
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_reads_back_from_its_name() {
        for class in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(class.as_str()), Some(class));
        }
        assert_eq!(ErrorClass::parse("blocked"), None);
    }
}
