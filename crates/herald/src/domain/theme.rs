//! A tenant portal's theme (API.md section 12): the platform's title, accent colour and logo,
//! checked here once so that the pages can put them into HTML and CSS as they are.

use serde::{Deserialize, Serialize};

const MAX_TITLE: usize = 100;
const MAX_LOGO_URL: usize = 2048;

/// Checked values only: a title of printable text, a colour `#rrggbb`, an `https` logo URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Theme {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent_color: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
}

/// A field that failed, named as the API's `param` (`theme.accent_color`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ThemeError {
    pub param: &'static str,
    pub message: String,
}

fn refuse(param: &'static str, message: impl Into<String>) -> ThemeError {
    ThemeError {
        param,
        message: message.into(),
    }
}

impl Theme {
    /// Checks each given field; `None` fields stay unset.
    pub fn new(
        title: Option<String>,
        accent_color: Option<String>,
        logo_url: Option<String>,
    ) -> Result<Self, ThemeError> {
        if let Some(title) = &title
            && (title.trim().is_empty()
                || title.chars().count() > MAX_TITLE
                || title.chars().any(char::is_control))
        {
            return Err(refuse(
                "theme.title",
                format!("theme.title must be 1 to {MAX_TITLE} characters of text"),
            ));
        }
        if let Some(color) = &accent_color
            && !is_hex_color(color)
        {
            return Err(refuse(
                "theme.accent_color",
                format!("theme.accent_color must be a colour like #0a7cff, not `{color}`"),
            ));
        }
        if let Some(logo) = &logo_url
            && !is_https_url(logo)
        {
            return Err(refuse(
                "theme.logo_url",
                format!("theme.logo_url must be an https:// URL of at most {MAX_LOGO_URL} characters"),
            ));
        }
        Ok(Self {
            title,
            accent_color: accent_color.map(|c| c.to_ascii_lowercase()),
            logo_url,
        })
    }

    /// The stored form, read back leniently: a theme that does not parse is no theme.
    pub fn from_stored(json: Option<&str>) -> Self {
        json.and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// `#rrggbb`.
fn is_hex_color(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_https_url(s: &str) -> bool {
    s.len() <= MAX_LOGO_URL
        && url::Url::parse(s)
            .is_ok_and(|u| u.scheme() == "https" && u.host().is_some() && u.as_str().len() <= MAX_LOGO_URL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_theme_takes_a_title_a_hex_colour_and_an_https_logo() {
        let theme = Theme::new(
            Some("Acme Markets".into()),
            Some("#0A7CFF".into()),
            Some("https://cdn.acme.example/logo.svg".into()),
        )
        .expect("valid");
        assert_eq!(theme.accent_color.as_deref(), Some("#0a7cff"));
        let stored = serde_json::to_string(&theme).expect("json");
        assert_eq!(Theme::from_stored(Some(&stored)), theme);
        assert!(Theme::from_stored(None).is_empty());
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        let color = |c: &str| Theme::new(None, Some(c.into()), None).map_err(|e| e.param);
        for bad in [
            "0a7cff",
            "#0a7cf",
            "#0a7cffa",
            "red",
            "#0a7cfg",
            "#fff;}body{",
            "\"><script>",
        ] {
            assert_eq!(color(bad), Err("theme.accent_color"), "{bad}");
        }
        let logo = |l: &str| Theme::new(None, None, Some(l.into())).map_err(|e| e.param);
        for bad in [
            "http://cdn.example/logo.png",
            "javascript:alert(1)",
            "data:image/png;base64,AA",
            "//cdn.example/x.png",
            "logo.png",
        ] {
            assert_eq!(logo(bad), Err("theme.logo_url"), "{bad}");
        }
        let title = |t: &str| Theme::new(Some(t.into()), None, None).map_err(|e| e.param);
        assert_eq!(title(""), Err("theme.title"));
        assert_eq!(title("a\u{7}b"), Err("theme.title"));
        assert_eq!(title(&"x".repeat(101)), Err("theme.title"));
        assert!(
            title("<script>alert(1)</script>").is_ok(),
            "text is escaped where it is shown, not refused"
        );
    }
}
