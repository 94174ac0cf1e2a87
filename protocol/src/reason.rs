//! Reason codes carried by `Bye`, `SessionEnded` and `CloseSession` (docs/protocol.md §7.2),
//! each with the message a viewer shows in 日本語 and English.

macro_rules! reasons {
    ($($num:literal => $name:ident, $ja:literal, $en:literal;)*) => {
        /// Why a connection or session ended.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(
                #[doc = $en]
                $name,
            )*
        }

        impl Reason {
            /// The wire value.
            pub fn to_u16(self) -> u16 {
                match self { $(Reason::$name => $num,)* }
            }
            /// The reason for a wire value.
            pub fn from_u16(v: u16) -> Option<Reason> {
                match v { $($num => Some(Reason::$name),)* _ => None }
            }
            /// A message for users in Japanese.
            pub fn message_ja(self) -> &'static str {
                match self { $(Reason::$name => $ja,)* }
            }
            /// A message for users in English.
            pub fn message_en(self) -> &'static str {
                match self { $(Reason::$name => $en,)* }
            }
            /// A stable snake-case name for logs, metrics and reports.
            pub fn name(self) -> &'static str {
                match self { $(Reason::$name => stringify!($name),)* }
            }
        }
    };
}

reasons! {
    1 => Logout, "ログアウトしました。", "You logged out.";
    2 => IdleTimeout, "一定時間操作がなかったため、セッションを終了しました。", "The session ended after a period without input.";
    3 => AbsoluteTimeout, "セッションの利用時間の上限に達しました。", "The session reached its maximum duration.";
    4 => Shutdown, "ゲートウェイが停止するため、セッションを終了しました。", "The gateway is shutting down.";
    5 => ProtocolViolation, "不正な通信を検知したため、接続を切断しました。", "The connection was closed after a protocol violation.";
    6 => AgentLost, "ブラウザのホストとの接続が失われました。", "The connection to the browser host was lost.";
    7 => BrowserExited, "ブラウザが終了しました。", "The browser exited.";
    8 => NoCapacity, "現在、空いているブラウザがありません。しばらくしてから再度お試しください。", "No browser is free right now. Please try again later.";
    9 => AuthFailed, "ユーザー名またはパスワードが違います。", "Wrong user name or password.";
    10 => LockedOut, "ログインの失敗が続いたため、一時的にロックされています。", "Too many failed logins: temporarily locked.";
    11 => Replaced, "別の端末から同じユーザーでログインしたため、切断しました。", "The same user logged in elsewhere.";
    12 => VersionMismatch, "ビューアとゲートウェイのバージョンが一致しません。", "The viewer and gateway versions do not match.";
    13 => RateLimited, "入力が多すぎるため、接続を切断しました。", "Too much input: the connection was closed.";
    14 => Internal, "内部エラーが発生しました。", "An internal error occurred.";
    15 => AdminClosed, "管理者がセッションを終了しました。", "An administrator ended the session.";
    16 => Normal, "接続を終了しました。", "The connection was closed.";
    17 => MemoryExceeded, "ブラウザが使用できるメモリの上限を超えたため、セッションを終了しました。", "The browser used more memory than a session may: the session was ended.";
    18 => EmergencyStop, "緊急停止のため、管理者がセッションを終了しました。管理者が再開するまで利用できません。", "Emergency stop: an administrator ended the session. The service is unavailable until an administrator resumes it.";
}
