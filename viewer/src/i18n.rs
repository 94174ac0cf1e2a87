//! User-facing messages in 日本語 and English, chosen by the locale (LC_ALL, LC_MESSAGES, LANG).

use crate::client::ClientError;

/// The display language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// 日本語.
    Ja,
    /// English.
    En,
}

impl Lang {
    /// From the environment: the first set of LC_ALL, LC_MESSAGES, LANG; `ja*` is Japanese.
    /// On Windows, where none of them is normally set, 日本語 unless one says otherwise (the
    /// staff of a Japanese municipality; `--lang en` switches).
    pub fn from_env() -> Lang {
        let var = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| std::env::var(k).ok())
            .find(|v| !v.is_empty());
        match var {
            Some(v) => Lang::from_locale(&v),
            None if cfg!(windows) => Lang::Ja,
            None => Lang::En,
        }
    }

    /// From a locale string such as `ja_JP.UTF-8`.
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("ja") {
            Lang::Ja
        } else {
            Lang::En
        }
    }

    fn pick(self, ja: &'static str, en: &'static str) -> &'static str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }
}

/// A state the UI shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Connecting to the gateway.
    Connecting,
    /// Connected, waiting for the first picture.
    WaitingForPicture,
    /// The network dropped; reconnecting.
    Reconnecting,
}

/// The message for a UI state.
pub fn status_message(lang: Lang, status: Status) -> &'static str {
    match status {
        Status::Connecting => lang.pick(
            "ゲートウェイに接続しています…",
            "Connecting to the gateway…",
        ),
        Status::WaitingForPicture => lang.pick("画面を待っています…", "Waiting for the screen…"),
        Status::Reconnecting => lang.pick(
            "接続が切れました。再接続しています…",
            "The connection dropped. Reconnecting…",
        ),
    }
}

/// The message for an error.
pub fn error_message(lang: Lang, e: &ClientError) -> String {
    match e {
        ClientError::CaFile { path, .. } => match lang {
            Lang::Ja => format!("CA 証明書ファイル {path} を読み込めません。"),
            Lang::En => format!("Cannot read the CA certificate file {path}."),
        },
        ClientError::Unreachable { gateway, .. } => match lang {
            Lang::Ja => format!("ゲートウェイ {gateway} に接続できません。ネットワークを確認してください。"),
            Lang::En => format!("Cannot reach the gateway {gateway}. Please check the network."),
        },
        ClientError::Certificate(_) => lang
            .pick(
                "ゲートウェイの証明書を検証できません。管理者に連絡してください。",
                "The gateway's certificate could not be verified. Please contact your administrator.",
            )
            .into(),
        ClientError::Denied => reason_message(lang, tsuitate_protocol::Reason::AuthFailed).into(),
        ClientError::LockedOut { retry_after_s } => match lang {
            Lang::Ja => format!(
                "ログインの失敗が続いたため、一時的にロックされています。{retry_after_s} 秒後に再度お試しください。"
            ),
            Lang::En => format!(
                "Too many failed logins: temporarily locked. Please try again in {retry_after_s} s."
            ),
        },
        ClientError::NoCapacity => reason_message(lang, tsuitate_protocol::Reason::NoCapacity).into(),
        ClientError::Ended(r) => reason_message(lang, *r).into(),
        ClientError::Protocol(_) => {
            reason_message(lang, tsuitate_protocol::Reason::ProtocolViolation).into()
        }
        ClientError::ConnectionLost(_) => lang
            .pick(
                "ゲートウェイとの接続が切れました。",
                "The connection to the gateway was lost.",
            )
            .into(),
    }
}

/// The message for a session end reason.
pub fn reason_message(lang: Lang, reason: tsuitate_protocol::Reason) -> &'static str {
    match lang {
        Lang::Ja => reason.message_ja(),
        Lang::En => reason.message_en(),
    }
}

/// The warning shown before a timeout ends the session (「あと N 分で切断されます」).
pub fn timeout_warning_message(
    lang: Lang,
    kind: tsuitate_protocol::TimeoutKind,
    seconds: u32,
) -> String {
    use tsuitate_protocol::TimeoutKind;
    let minutes = seconds.div_ceil(60);
    match (lang, kind) {
        (Lang::Ja, TimeoutKind::Idle) if seconds >= 60 => {
            format!(
                "操作がないため、あと {minutes} 分で切断されます。続ける場合は操作してください。"
            )
        }
        (Lang::Ja, TimeoutKind::Idle) => {
            format!(
                "操作がないため、あと {seconds} 秒で切断されます。続ける場合は操作してください。"
            )
        }
        (Lang::Ja, TimeoutKind::Absolute) if seconds >= 60 => {
            format!("利用時間の上限のため、あと {minutes} 分で切断されます。")
        }
        (Lang::Ja, TimeoutKind::Absolute) => {
            format!("利用時間の上限のため、あと {seconds} 秒で切断されます。")
        }
        (Lang::En, TimeoutKind::Idle) if seconds >= 60 => format!(
            "No input: the session ends in {minutes} min. Use the keyboard or mouse to continue."
        ),
        (Lang::En, TimeoutKind::Idle) => format!(
            "No input: the session ends in {seconds} s. Use the keyboard or mouse to continue."
        ),
        (Lang::En, TimeoutKind::Absolute) if seconds >= 60 => {
            format!("The session reaches its maximum duration in {minutes} min.")
        }
        (Lang::En, TimeoutKind::Absolute) => {
            format!("The session reaches its maximum duration in {seconds} s.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_warnings_say_minutes_or_seconds_in_both_languages() {
        use tsuitate_protocol::TimeoutKind;
        assert_eq!(
            timeout_warning_message(Lang::Ja, TimeoutKind::Idle, 300),
            "操作がないため、あと 5 分で切断されます。続ける場合は操作してください。"
        );
        assert!(timeout_warning_message(Lang::Ja, TimeoutKind::Absolute, 30).contains("あと 30 秒"));
        assert!(timeout_warning_message(Lang::En, TimeoutKind::Idle, 61).contains("in 2 min"));
    }

    #[test]
    fn locale_selection() {
        assert_eq!(Lang::from_locale("ja_JP.UTF-8"), Lang::Ja);
        assert_eq!(Lang::from_locale("en_US.UTF-8"), Lang::En);
        assert_eq!(Lang::from_locale("C"), Lang::En);
        assert_eq!(Lang::from_locale(""), Lang::En);
    }

    #[test]
    fn messages_exist_in_both_languages() {
        let e = ClientError::Denied;
        assert_eq!(
            error_message(Lang::Ja, &e),
            "ユーザー名またはパスワードが違います。"
        );
        assert_eq!(error_message(Lang::En, &e), "Wrong user name or password.");
        assert!(status_message(Lang::Ja, Status::Connecting).contains("接続"));
    }
}
