//! The headless script language (docs/viewer.md "Script language"): one action per line, `#`
//! starts a comment. Parsing is pure and reports every error with its line number before the
//! viewer connects.

use std::fmt;
use std::time::Duration;

use thiserror::Error;
use tsuitate_protocol::{Button, InputEvent, MAX_WHEEL_DELTA};

use crate::keys::{parse_chord, KeyChord};

/// Most characters in one committed-text event (docs/protocol.md §4.4).
pub const TEXT_CHUNK_CHARS: usize = 64;
/// Most bytes in one committed-text event (the wire string has a u8 length).
pub const TEXT_CHUNK_BYTES: usize = 255;

/// One script action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Sleep.
    Wait(Duration),
    /// Move the pointer (frame coordinates).
    Move { x: u16, y: u16 },
    /// Move, press and release a button.
    Click { x: u16, y: u16, button: Button },
    /// Wheel notches (+dy scrolls down).
    Wheel { dx: i16, dy: i16 },
    /// Committed text, as an IME sends it.
    Type(String),
    /// A key or chord, pressed and released.
    Key(KeyChord),
    /// Save the last decoded frame as this PNG file name in the snapshot directory.
    Snapshot(String),
    /// Fail unless a new frame is decoded within this time (counted from the last input).
    ExpectChange(Duration),
}

/// An action and the line it came from (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Line number in the script file.
    pub line: usize,
    /// What to do.
    pub action: Action,
}

/// A parsed script.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// Steps in order.
    pub steps: Vec<Step>,
}

/// One problem on one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Every problem found in a script.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ScriptError {
    /// The problems, in line order.
    pub errors: Vec<LineError>,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl Script {
    /// Parse a whole script; every bad line is reported.
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let mut steps = Vec::new();
        let mut errors = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = strip_comment(raw);
            if content.is_empty() {
                continue;
            }
            match parse_action(&content) {
                Ok(action) => steps.push(Step { line, action }),
                Err(message) => errors.push(LineError { line, message }),
            }
        }
        if errors.is_empty() {
            Ok(Script { steps })
        } else {
            Err(ScriptError { errors })
        }
    }

    /// Snapshot file names the script writes (to check the snapshot directory up front).
    pub fn has_snapshots(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.action, Action::Snapshot(_)))
    }
}

/// Remove a comment: `#` at the start of the line or after whitespace. `\#` is a literal `#`
/// and `\\` a literal backslash.
fn strip_comment(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    let mut prev_space = true;
    while let Some(c) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some('#') | Some('\\')) => {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
                prev_space = false;
                continue;
            }
            '#' if prev_space => break,
            _ => out.push(c),
        }
        prev_space = c.is_whitespace();
    }
    out.trim().to_owned()
}

fn parse_action(content: &str) -> Result<Action, String> {
    let (verb, rest) = match content.split_once(char::is_whitespace) {
        Some((v, r)) => (v, r.trim()),
        None => (content, ""),
    };
    let args: Vec<&str> = rest.split_whitespace().collect();
    match verb {
        "wait" => Ok(Action::Wait(millis(one(&args, "wait MS")?)?)),
        "move" => {
            let (x, y) = two_coords(&args, "move X Y")?;
            Ok(Action::Move { x, y })
        }
        "click" => parse_click(&args),
        "wheel" => {
            if args.len() != 2 {
                return Err("expected `wheel DX DY`".into());
            }
            Ok(Action::Wheel {
                dx: wheel(args[0])?,
                dy: wheel(args[1])?,
            })
        }
        "type" => parse_type(rest),
        "key" => {
            let name = one(&args, "key NAME")?;
            parse_chord(name)
                .map(Action::Key)
                .ok_or_else(|| format!("unknown key or chord `{name}`"))
        }
        "snapshot" => parse_snapshot(one(&args, "snapshot NAME.png")?),
        "expect-change" => Ok(Action::ExpectChange(millis(one(
            &args,
            "expect-change MS",
        )?)?)),
        other => Err(format!("unknown action `{other}`")),
    }
}

fn one<'a>(args: &[&'a str], usage: &str) -> Result<&'a str, String> {
    match args {
        [a] => Ok(a),
        _ => Err(format!("expected `{usage}`")),
    }
}

fn millis(s: &str) -> Result<Duration, String> {
    s.parse::<u32>()
        .map(|ms| Duration::from_millis(ms.into()))
        .map_err(|_| format!("`{s}` is not a number of milliseconds"))
}

fn coord(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("`{s}` is not a coordinate (0..=65535)"))
}

fn two_coords(args: &[&str], usage: &str) -> Result<(u16, u16), String> {
    match args {
        [x, y] => Ok((coord(x)?, coord(y)?)),
        _ => Err(format!("expected `{usage}`")),
    }
}

fn wheel(s: &str) -> Result<i16, String> {
    match s.parse::<i16>() {
        Ok(v) if v.unsigned_abs() <= MAX_WHEEL_DELTA.unsigned_abs() => Ok(v),
        _ => Err(format!(
            "`{s}` is not a wheel delta (-{MAX_WHEEL_DELTA}..={MAX_WHEEL_DELTA})"
        )),
    }
}

fn parse_click(args: &[&str]) -> Result<Action, String> {
    let (xy, button) = match args {
        [x, y] => ((*x, *y), Button::Left),
        [x, y, b] => {
            let button = match *b {
                "left" => Button::Left,
                "right" => Button::Right,
                "middle" => Button::Middle,
                other => return Err(format!("unknown button `{other}` (left|right|middle)")),
            };
            ((*x, *y), button)
        }
        _ => return Err("expected `click X Y [left|right|middle]`".into()),
    };
    Ok(Action::Click {
        x: coord(xy.0)?,
        y: coord(xy.1)?,
        button,
    })
}

fn parse_type(rest: &str) -> Result<Action, String> {
    if rest.is_empty() {
        return Err("expected `type TEXT`".into());
    }
    if !tsuitate_protocol::text_valid(rest) {
        return Err("text contains control characters".into());
    }
    Ok(Action::Type(rest.to_owned()))
}

fn parse_snapshot(name: &str) -> Result<Action, String> {
    let plain = !name.contains(['/', '\\']) && !name.starts_with('.');
    if !plain || !name.ends_with(".png") || name.len() <= 4 {
        return Err(format!(
            "`{name}` must be a plain file name ending in .png (no directories)"
        ));
    }
    Ok(Action::Snapshot(name.to_owned()))
}

/// Split committed text into chunks of at most 64 characters and 255 bytes.
pub fn text_chunks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut n = 0;
    for c in text.chars() {
        if n == TEXT_CHUNK_CHARS || cur.len() + c.len_utf8() > TEXT_CHUNK_BYTES {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
        cur.push(c);
        n += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Action {
    /// The input events this action sends (empty for actions that send none).
    pub fn input_events(&self) -> Vec<InputEvent> {
        match self {
            Action::Move { x, y } => vec![InputEvent::PointerMove { x: *x, y: *y }],
            Action::Click { x, y, button } => vec![
                InputEvent::PointerMove { x: *x, y: *y },
                InputEvent::Button {
                    down: true,
                    button: *button,
                },
                InputEvent::Button {
                    down: false,
                    button: *button,
                },
            ],
            Action::Wheel { dx, dy } => vec![InputEvent::Wheel { dx: *dx, dy: *dy }],
            Action::Type(text) => text_chunks(text)
                .into_iter()
                .map(InputEvent::Text)
                .collect(),
            Action::Key(chord) => chord.events(),
            Action::Wait(_) | Action::Snapshot(_) | Action::ExpectChange(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example() {
        let text = "wait 500                 # milliseconds\n\
                    move 100 200\n\
                    click 100 200            # left\n\
                    click 1 2 right\n\
                    wheel 0 -3\n\
                    type 情報セキュリティ      # committed text\n\
                    key Enter\n\
                    key Shift+Tab\n\
                    # a comment line\n\
                    \n\
                    snapshot after-click.png # the last frame\n\
                    expect-change 2000\n";
        let s = Script::parse(text).unwrap();
        assert_eq!(s.steps.len(), 10);
        assert_eq!(s.steps[0].action, Action::Wait(Duration::from_millis(500)));
        assert_eq!(s.steps[3].line, 4);
        assert_eq!(
            s.steps[3].action,
            Action::Click {
                x: 1,
                y: 2,
                button: Button::Right
            }
        );
        assert_eq!(s.steps[4].action, Action::Wheel { dx: 0, dy: -3 });
        assert_eq!(s.steps[5].action, Action::Type("情報セキュリティ".into()));
        assert_eq!(s.steps[8].line, 11);
        assert_eq!(
            s.steps[8].action,
            Action::Snapshot("after-click.png".into())
        );
        assert!(s.has_snapshots());
    }

    #[test]
    fn reports_every_error_with_its_line() {
        let text = "wait 5\nfly 1 2\nmove 1 x\nwheel 0 500\nkey Nope\nclick 1 2 up\nsnapshot ../x.png\nwait\n";
        let e = Script::parse(text).unwrap_err();
        let lines: Vec<usize> = e.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6, 7, 8]);
        assert!(e.to_string().contains("line 2: unknown action `fly`"));
    }

    #[test]
    fn hash_inside_words_and_escapes() {
        let s = Script::parse("type C#  and \\# too # comment").unwrap();
        assert_eq!(s.steps[0].action, Action::Type("C#  and # too".into()));
    }

    #[test]
    fn text_is_chunked_by_chars_and_bytes() {
        let long: String = "あ".repeat(130);
        let chunks = text_chunks(&long);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].chars().count(), 64);
        assert_eq!(chunks[2].chars().count(), 2);
        let emoji: String = "😀".repeat(64);
        let chunks = text_chunks(&emoji);
        assert!(chunks.iter().all(|c| c.len() <= TEXT_CHUNK_BYTES));
        assert_eq!(chunks.concat(), emoji);
    }

    #[test]
    fn click_events() {
        let a = Action::Click {
            x: 5,
            y: 6,
            button: Button::Left,
        };
        assert_eq!(
            a.input_events(),
            vec![
                InputEvent::PointerMove { x: 5, y: 6 },
                InputEvent::Button {
                    down: true,
                    button: Button::Left
                },
                InputEvent::Button {
                    down: false,
                    button: Button::Left
                },
            ]
        );
    }
}
