//! The two pages (login, viewer) and the bundled assets. Pages are rendered here in 日本語 or
//! English; status and error messages come from the viewers' one catalogue
//! (`tsuitate_viewer::i18n`). No inline script or style: the Content-Security-Policy forbids
//! both. Every asset is compiled into the binary (closed networks: no CDN, no web font).

use tsuitate_viewer::i18n::{status_message, Lang, Status};

/// A bundled file: URL name, content type, bytes.
pub struct Asset {
    /// Name under `/assets/`.
    pub name: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Contents.
    pub body: &'static [u8],
}

/// Every file under `/assets/`. Lookup is by exact name: nothing is read from disk.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "login.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/login.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/style.css"),
    },
];

/// The viewer script with the protocol's closed set of key codes filled in (one list: the
/// page sends only codes the web viewer accepts).
static APP_JS: std::sync::LazyLock<bytes::Bytes> = std::sync::LazyLock::new(|| {
    let codes: Vec<&str> = tsuitate_protocol::KeyCode::ALL
        .iter()
        .map(|c| c.name())
        .collect();
    let list = serde_json::to_string(&codes).unwrap_or_else(|_| "[]".into());
    let script = String::from_utf8_lossy(include_bytes!("../assets/app.js"));
    bytes::Bytes::from(script.replace("@KEY_CODES@", &list))
});

/// The asset called `name` (content type and bytes), if any.
pub fn asset(name: &str) -> Option<(&'static str, bytes::Bytes)> {
    let a = ASSETS.iter().find(|a| a.name == name)?;
    let body = if a.name == "app.js" {
        APP_JS.clone()
    } else {
        bytes::Bytes::from_static(a.body)
    };
    Some((a.content_type, body))
}

/// The page language: an explicit `lang` choice, else the browser's `Accept-Language`.
pub fn pick_lang(explicit: Option<&str>, accept_language: Option<&str>) -> Lang {
    match explicit {
        Some("ja") => return Lang::Ja,
        Some("en") => return Lang::En,
        _ => {}
    }
    let Some(accept) = accept_language else {
        return Lang::Ja;
    };
    // The first listed language decides (browsers list by preference).
    let first = accept.split(',').next().unwrap_or("").trim();
    if first.is_empty() || first.to_ascii_lowercase().starts_with("ja") {
        Lang::Ja
    } else {
        Lang::En
    }
}

/// `ja` or `en`.
pub fn lang_code(lang: Lang) -> &'static str {
    match lang {
        Lang::Ja => "ja",
        Lang::En => "en",
    }
}

/// Escape text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

struct Text {
    title: &'static str,
    lead: &'static str,
    user: &'static str,
    password: &'static str,
    login: &'static str,
    other_lang: &'static str,
    logout: &'static str,
    fullscreen: &'static str,
    stats: &'static str,
    ime: &'static str,
}

fn text(lang: Lang) -> Text {
    match lang {
        Lang::Ja => Text {
            title: "tsuitate — インターネット閲覧",
            lead: "LGWAN からインターネットを安全に閲覧します。ユーザー名とパスワードでログインしてください。",
            user: "ユーザー名",
            password: "パスワード",
            login: "ログイン",
            other_lang: "English",
            logout: "ログアウト",
            fullscreen: "全画面",
            stats: "統計",
            ime: "日本語入力",
        },
        Lang::En => Text {
            title: "tsuitate — web browsing",
            lead: "Browse the Internet safely from LGWAN. Log in with your user name and password.",
            user: "User name",
            password: "Password",
            login: "Log in",
            other_lang: "日本語",
            logout: "Log out",
            fullscreen: "Full screen",
            stats: "Statistics",
            ime: "Text input",
        },
    }
}

fn head(lang: Lang, extra_meta: &str) -> String {
    let t = text(lang);
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">{extra_meta}\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/assets/style.css\"></head>\n",
        code = lang_code(lang),
        title = escape(t.title),
    )
}

/// A message shown on the login page (an error, or why the last session ended).
pub struct Notice<'a> {
    /// Stable name for tests and support (`AuthFailed`, `Logout`, ...).
    pub name: &'a str,
    /// The text, in the page's language.
    pub text: &'a str,
    /// Whether it is an error (red) or information.
    pub error: bool,
}

/// The login page. `csrf` goes into the form (and, by the caller, into a cookie).
pub fn login_page(lang: Lang, csrf: &str, notice: Option<Notice<'_>>) -> String {
    let t = text(lang);
    let other = match lang {
        Lang::Ja => "en",
        Lang::En => "ja",
    };
    let notice = notice.map_or(String::new(), |n| {
        format!(
            "<p id=\"notice\" class=\"{class}\" role=\"alert\" data-name=\"{name}\">{text}</p>",
            class = if n.error { "error" } else { "info" },
            name = escape(n.name),
            text = escape(n.text),
        )
    });
    format!(
        "{head}<body class=\"login\"><main>\
         <h1>tsuitate <span>衝立</span></h1><p class=\"lead\">{lead}</p>{notice}\
         <form id=\"login\" method=\"post\" action=\"/login\" autocomplete=\"off\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"lang\" value=\"{code}\">\
         <label>{user}<input id=\"user\" name=\"user\" autocomplete=\"username\" required maxlength=\"64\" autofocus></label>\
         <label>{password}<input id=\"password\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required maxlength=\"256\"></label>\
         <button id=\"submit\" type=\"submit\">{login}</button></form>\
         <p class=\"lang\"><a id=\"other-lang\" href=\"/?lang={other}\" data-lang=\"{other}\">{other_lang}</a></p>\
         </main><script src=\"/assets/login.js\"></script></body></html>\n",
        head = head(lang, ""),
        lead = escape(t.lead),
        csrf = escape(csrf),
        code = lang_code(lang),
        user = escape(t.user),
        password = escape(t.password),
        login = escape(t.login),
        other_lang = escape(t.other_lang),
    )
}

/// The viewer page for a logged-in user.
pub fn viewer_page(lang: Lang, csrf: &str, user: &str) -> String {
    let t = text(lang);
    let meta = format!("<meta name=\"csrf\" content=\"{}\">", escape(csrf));
    let status = |s| escape(status_message(lang, s));
    format!(
        "{head}<body class=\"viewer\">\
         <div id=\"bar\"><span id=\"who\">{user}</span>\
         <button id=\"fullscreen\" type=\"button\">{fullscreen}</button>\
         <button id=\"stats-toggle\" type=\"button\">{stats}</button>\
         <form id=\"logout-form\" method=\"post\" action=\"/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button id=\"logout\" type=\"submit\">{logout}</button></form></div>\
         <div id=\"stage\"><video id=\"screen\" autoplay muted playsinline disablepictureinpicture disableremoteplayback></video>\
         <textarea id=\"ime\" aria-label=\"{ime}\" autocomplete=\"off\" autocapitalize=\"off\" spellcheck=\"false\"></textarea></div>\
         <div id=\"status\" role=\"status\" data-connecting=\"{connecting}\" data-waiting=\"{waiting}\" data-reconnecting=\"{reconnecting}\">{connecting}</div>\
         <pre id=\"stats\" hidden></pre>\
         <script src=\"/assets/app.js\"></script></body></html>\n",
        head = head(lang, &meta),
        user = escape(user),
        fullscreen = escape(t.fullscreen),
        stats = escape(t.stats),
        csrf = escape(csrf),
        logout = escape(t.logout),
        ime = escape(t.ime),
        connecting = status(Status::Connecting),
        waiting = status(Status::WaitingForPicture),
        reconnecting = status(Status::Reconnecting),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_choice() {
        assert_eq!(pick_lang(Some("en"), Some("ja")), Lang::En);
        assert_eq!(pick_lang(None, Some("en-US,en;q=0.9,ja;q=0.8")), Lang::En);
        assert_eq!(pick_lang(None, Some("ja,en-US;q=0.9")), Lang::Ja);
        assert_eq!(pick_lang(Some("xx"), None), Lang::Ja);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let p = login_page(
            Lang::Ja,
            "tok",
            Some(Notice {
                name: "AuthFailed",
                text: "<script>",
                error: true,
            }),
        );
        assert!(p.contains("&lt;script&gt;"));
        let v = viewer_page(Lang::En, "tok", "a\"b");
        assert!(v.contains("a&quot;b"));
        assert!(v.contains("Connecting to the gateway"));
        // No inline script or style anywhere (the CSP forbids them).
        for page in [&p, &v] {
            assert!(!page.contains("<script>") && !page.contains("style="));
        }
    }

    #[test]
    fn assets_by_exact_name_only() {
        let (ty, js) = asset("app.js").unwrap();
        assert!(ty.starts_with("text/javascript"));
        let js = String::from_utf8(js.to_vec()).unwrap();
        assert!(js.contains("\"IntlYen\"") && !js.contains("@KEY_CODES@"));
        assert!(asset("../Cargo.toml").is_none());
        assert!(asset("").is_none());
    }
}
