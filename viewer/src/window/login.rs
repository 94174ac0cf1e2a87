//! The password form shown in the window when no password was given (TSUITATE_PASSWORD), and
//! again after a failed login or an ended session. The password stays in memory only and never
//! leaves this form except in `Login`.

use std::fmt;

use winit::event::{ElementState, KeyEvent};
use winit::keyboard::{Key, NamedKey};

use crate::i18n::Lang;
use crate::script::TEXT_CHUNK_BYTES;

/// What a key did to the form.
#[derive(PartialEq, Eq)]
pub enum FormAction {
    /// Nothing to do.
    None,
    /// Log in with this password.
    Submit(String),
}

/// User name (fixed by the configuration) and the password being typed.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginForm {
    user: String,
    password: String,
    /// A message from the previous attempt (wrong password, session ended, …).
    pub error: Option<String>,
}

impl fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginForm")
            .field("user", &self.user)
            .field("password_chars", &self.password.chars().count())
            .field("error", &self.error)
            .finish()
    }
}

impl LoginForm {
    /// An empty form for `user`.
    pub fn new(user: &str, error: Option<String>) -> LoginForm {
        LoginForm {
            user: user.to_owned(),
            password: String::new(),
            error,
        }
    }

    /// A key press in the form.
    pub fn key(&mut self, event: &KeyEvent) -> FormAction {
        if event.state != ElementState::Pressed {
            return FormAction::None;
        }
        match &event.logical_key {
            Key::Named(NamedKey::Enter) if !self.password.is_empty() => {
                FormAction::Submit(std::mem::take(&mut self.password))
            }
            Key::Named(NamedKey::Backspace) => {
                self.password.pop();
                FormAction::None
            }
            Key::Named(NamedKey::Escape) => {
                self.password.clear();
                FormAction::None
            }
            Key::Named(NamedKey::Space) => {
                self.commit(" ");
                FormAction::None
            }
            Key::Character(s) => {
                self.commit(s);
                FormAction::None
            }
            _ => FormAction::None,
        }
    }

    /// Text typed through the IME.
    pub fn commit(&mut self, text: &str) {
        for c in text.chars().filter(|c| !c.is_control()) {
            if self.password.len() + c.len_utf8() <= TEXT_CHUNK_BYTES {
                self.password.push(c);
            }
        }
    }

    /// The form as lines of text (the password as dots).
    pub fn text(&self, lang: Lang) -> String {
        let dots = "●".repeat(self.password.chars().count());
        let (user, pass, hint) = match lang {
            Lang::Ja => (
                "ユーザー",
                "パスワード",
                "パスワードを入力して Enter を押してください",
            ),
            Lang::En => ("User", "Password", "Type your password and press Enter"),
        };
        let mut out = String::new();
        if let Some(e) = &self.error {
            out.push_str(e);
            out.push_str("\n\n");
        }
        out.push_str(&format!("{user}: {}\n{pass}: {dots}\n\n{hint}", self.user));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_text_hides_the_password() {
        let mut f = LoginForm::new("alice", Some("Wrong user name or password.".into()));
        f.commit("xy\u{7}zz");
        let t = f.text(Lang::En);
        assert!(t.starts_with("Wrong user name or password.\n"));
        assert!(t.contains("Password: ●●●●"));
        assert!(!t.contains("xyzz"));
        assert!(!format!("{f:?}").contains("xyzz"));
    }
}
