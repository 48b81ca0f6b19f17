//! A webhook's delivery order (API.md section 3, "Delivery controls"): as fast as the endpoint
//! takes them, or FIFO, one attempt at a time across every node, in the order the events were
//! accepted, a retrying delivery holding back the rest until it ends.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryOrder {
    /// `"none"`: many attempts in flight, no order promised.
    #[default]
    Any,
    /// `"fifo"`.
    Fifo,
}

impl DeliveryOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Any => "none",
            Self::Fifo => "fifo",
        }
    }

    /// The stored and API form, `none` or `fifo`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::Any),
            "fifo" => Some(Self::Fifo),
            _ => None,
        }
    }

    /// The API's `ordering` field; anything but the string `"none"` or `"fifo"` is refused.
    pub fn parse(value: &Value) -> Result<Self, String> {
        value
            .as_str()
            .and_then(Self::from_name)
            .ok_or_else(|| "ordering must be \"none\" or \"fifo\"".to_owned())
    }

    pub fn is_fifo(self) -> bool {
        self == Self::Fifo
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ordering_is_none_or_fifo_and_nothing_else() {
        assert_eq!(DeliveryOrder::parse(&json!("none")), Ok(DeliveryOrder::Any));
        assert_eq!(DeliveryOrder::parse(&json!("fifo")), Ok(DeliveryOrder::Fifo));
        for bad in [
            json!("FIFO"),
            json!(""),
            json!(null),
            json!(true),
            json!(1),
            json!(["fifo"]),
        ] {
            assert!(DeliveryOrder::parse(&bad).is_err(), "{bad} is refused");
        }
        assert_eq!(
            DeliveryOrder::from_name(DeliveryOrder::Fifo.as_str()),
            Some(DeliveryOrder::Fifo)
        );
    }
}
