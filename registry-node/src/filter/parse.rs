//! Lexer and recursive-descent parser: expression text to [`Expr`].
//!
//! The grammar follows go-bexpr's PEG (precedence `not` > `and` > `or`,
//! matchers as in the module docs of [`super`]). Error messages carry the
//! `line:column (offset)` of the offending token, like go-bexpr's.

use regex::Regex;

use super::{Expr, FilterError, Matcher, Op, Segment, Selector};

/// Deepest nesting of parentheses and `not`. The expression comes from an
/// HTTP client, which must not be able to overflow the stack.
const MAX_DEPTH: usize = 64;

/// Keywords that end a selector's operator position. A one-segment selector
/// spelled like one of these is read as the keyword.
const KEYWORDS: &[&str] = &[
    "and", "or", "not", "is", "empty", "in", "contains", "matches",
];

/// Parses a whole expression.
pub(super) fn parse(input: &str) -> Result<Expr, FilterError> {
    let tokens = Lexer { input, pos: 0 }.tokenize()?;
    let mut parser = Parser {
        input,
        tokens,
        next: 0,
    };
    let expr = parser.or_expr(0)?;
    let tok = parser.peek();
    match tok.kind {
        Kind::Eof => Ok(expr),
        Kind::RParen => Err(parser.error(tok.start, "Unmatched parentheses: ')' has no '('")),
        _ => Err(parser.error(
            tok.start,
            format!(
                "expected \"and\", \"or\" or end of input, found {}",
                parser.describe(tok)
            ),
        )),
    }
}

/// Builds a syntax error at a byte offset of `input`.
fn syntax_error(input: &str, offset: usize, message: impl Into<String>) -> FilterError {
    let before = &input[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    FilterError::Syntax {
        line,
        column,
        offset,
        message: message.into(),
    }
}

/// One lexeme. Lexing happens up front so the parser can look two tokens
/// ahead (`Sel not in` vs `Sel not contains`) without backtracking.
#[derive(Debug, Clone)]
struct Token {
    kind: Kind,
    /// Byte offsets into the input.
    start: usize,
    end: usize,
}

/// What a token is. Keywords are not a kind of their own: `in`, `not`, … lex
/// as one-segment [`Kind::Word`]s and only the parser knows, by position,
/// whether a word is a keyword, a selector or a bare-word value.
#[derive(Debug, Clone)]
enum Kind {
    LParen,
    RParen,
    Equal,
    NotEqual,
    /// A quoted string, already unescaped.
    Str(String),
    /// A number literal, kept as text (values compare by text).
    Number(String),
    /// A selector, a keyword or a bare-word value; the parser decides which.
    Word(Selector),
    Eof,
}

/// Turns the input into tokens; every error points at a byte offset.
struct Lexer<'a> {
    input: &'a str,
    /// Byte offset of the next unread character; always on a char boundary.
    pos: usize,
}

impl Lexer<'_> {
    /// All tokens, ending with [`Kind::Eof`].
    fn tokenize(mut self) -> Result<Vec<Token>, FilterError> {
        let mut tokens = Vec::new();
        loop {
            self.skip_whitespace();
            let start = self.pos;
            let Some(c) = self.peek() else {
                tokens.push(Token {
                    kind: Kind::Eof,
                    start,
                    end: start,
                });
                return Ok(tokens);
            };
            let kind = match c {
                '(' => {
                    self.pos += 1;
                    Kind::LParen
                }
                ')' => {
                    self.pos += 1;
                    Kind::RParen
                }
                '=' if self.rest().starts_with("==") => {
                    self.pos += 2;
                    Kind::Equal
                }
                '=' => return Err(self.error(start, "unexpected '=', did you mean '=='?")),
                '!' if self.rest().starts_with("!=") => {
                    self.pos += 2;
                    Kind::NotEqual
                }
                '!' => return Err(self.error(start, "unexpected '!', use '!=' or \"not\"")),
                '"' | '`' => Kind::Str(self.string()?),
                '-' | '0'..='9' => Kind::Number(self.number()?),
                c if c.is_ascii_alphabetic() => Kind::Word(self.selector()?),
                c => return Err(self.error(start, format!("unexpected character {c:?}"))),
            };
            tokens.push(Token {
                kind,
                start,
                end: self.pos,
            });
        }
    }

    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r' | '\n')) {
            self.pos += 1;
        }
    }

    fn skip_digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> FilterError {
        syntax_error(self.input, offset, message)
    }

    /// `[a-zA-Z][a-zA-Z0-9_]*`; the caller has checked the first letter.
    fn identifier(&mut self) -> String {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        self.input[start..self.pos].to_string()
    }

    /// An identifier followed by `.name`, `.N` and `["key"]` segments.
    fn selector(&mut self) -> Result<Selector, FilterError> {
        let start = self.pos;
        let mut segments = vec![Segment {
            name: self.identifier(),
            index: None,
        }];
        loop {
            match self.peek() {
                Some('.') => {
                    let dot = self.pos;
                    self.pos += 1;
                    match self.peek() {
                        Some(c) if c.is_ascii_alphabetic() => segments.push(Segment {
                            name: self.identifier(),
                            index: None,
                        }),
                        Some(c) if c.is_ascii_digit() => {
                            let digits = self.pos;
                            self.skip_digits();
                            let name = self.input[digits..self.pos].to_string();
                            segments.push(Segment {
                                index: name.parse().ok(),
                                name,
                            });
                        }
                        _ => return Err(self.error(dot, "expected a field name after '.'")),
                    }
                }
                Some('[') => {
                    let open = self.pos;
                    self.pos += 1;
                    self.skip_whitespace();
                    if !matches!(self.peek(), Some('"' | '`')) {
                        return Err(self.error(
                            open,
                            "Invalid index: expected a quoted map key, as in Meta[\"key\"]",
                        ));
                    }
                    let name = self.string()?;
                    self.skip_whitespace();
                    if self.peek() != Some(']') {
                        return Err(self.error(open, "Unclosed index expression: expected ']'"));
                    }
                    self.pos += 1;
                    segments.push(Segment { name, index: None });
                }
                _ => break,
            }
        }
        let text = self.input[start..self.pos].to_string();
        // `Meta.weird-key` is the usual mistake: go-bexpr needs brackets for keys
        // that are not identifiers, so point there instead of at a stray '-'.
        if let Some(c) = self.peek()
            && (c.is_ascii_alphanumeric() || "_-/:~@%+*#$&".contains(c))
        {
            return Err(self.error(
                self.pos,
                format!(
                    "unexpected {c:?} in selector {text:?}; \
                     write map keys that are not identifiers as Sel[\"key\"]"
                ),
            ));
        }
        Ok(Selector { text, segments })
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)?`, which must end at whitespace, `)` or
    /// the end of input.
    fn number(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(start, "unexpected character '-'"));
            }
        }
        if self.peek() == Some('0') {
            self.pos += 1;
        } else {
            self.skip_digits();
        }
        if self.peek() == Some('.')
            && self.input[self.pos + 1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        {
            self.pos += 1;
            self.skip_digits();
        }
        match self.peek() {
            None | Some(' ' | '\t' | '\r' | '\n' | ')') => {
                Ok(self.input[start..self.pos].to_string())
            }
            Some(_) => Err(self.error(
                start,
                "Invalid number literal (quote values that are not plain numbers)",
            )),
        }
    }

    /// A backtick raw string or a double-quoted string with Go escapes.
    fn string(&mut self) -> Result<String, FilterError> {
        let start = self.pos;
        if self.bump() == Some('`') {
            let Some(len) = self.rest().find('`') else {
                return Err(self.error(start, "Unterminated string literal"));
            };
            let raw = self.rest()[..len].to_string();
            self.pos += len + 1;
            return Ok(raw);
        }
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(start, "Unterminated string literal")),
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.escape(self.pos - 1)?),
                // Go's strconv.Unquote rejects these too; `\n` is the way.
                Some('\n') => {
                    return Err(self.error(self.pos - 1, "newline in string literal"));
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// The character after a backslash at `start`.
    fn escape(&mut self, start: usize) -> Result<char, FilterError> {
        let c = self
            .bump()
            .ok_or_else(|| self.error(start, "Unterminated string literal"))?;
        let decoded = match c {
            'a' => '\x07',
            'b' => '\x08',
            'f' => '\x0c',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\x0b',
            '\\' => '\\',
            '"' => '"',
            'x' => self.code_point(start, 2, 16)?,
            'u' => self.code_point(start, 4, 16)?,
            'U' => self.code_point(start, 8, 16)?,
            '0'..='7' => {
                // The first octal digit is already consumed.
                self.pos -= 1;
                self.code_point(start, 3, 8)?
            }
            other => {
                return Err(self.error(start, format!("invalid escape sequence \\{other}")));
            }
        };
        Ok(decoded)
    }

    /// Reads exactly `digits` digits in `radix`. Go's `\x` and octal escapes
    /// produce raw bytes; a Rust string holds only whole characters, so those
    /// are limited to ASCII.
    fn code_point(&mut self, start: usize, digits: usize, radix: u32) -> Result<char, FilterError> {
        let text: String = self.rest().chars().take(digits).collect();
        if text.len() != digits || !text.chars().all(|c| c.is_digit(radix)) {
            return Err(self.error(start, "invalid escape sequence"));
        }
        self.pos += digits;
        let value = u32::from_str_radix(&text, radix)
            .map_err(|_| self.error(start, "invalid escape sequence"))?;
        if digits <= 3 && value > 0x7f {
            return Err(self.error(start, "byte escapes above \\x7f are not supported, use \\u"));
        }
        char::from_u32(value).ok_or_else(|| self.error(start, "escape is not a Unicode character"))
    }
}

/// Recursive descent over the tokens, one method per grammar rule.
struct Parser<'a> {
    input: &'a str,
    /// Always ends with [`Kind::Eof`]; `next` never moves past it.
    tokens: Vec<Token>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.next]
    }

    fn bump(&mut self) -> Token {
        let tok = self.tokens[self.next].clone();
        if !matches!(tok.kind, Kind::Eof) {
            self.next += 1;
        }
        tok
    }

    fn is_keyword(tok: &Token, keyword: &str) -> bool {
        matches!(&tok.kind, Kind::Word(sel) if sel.text == keyword)
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let found = Self::is_keyword(self.peek(), keyword);
        if found {
            self.next += 1;
        }
        found
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> FilterError {
        syntax_error(self.input, offset, message)
    }

    /// How a token reads in an error message.
    fn describe(&self, tok: &Token) -> String {
        match tok.kind {
            Kind::Eof => "end of input".to_string(),
            _ => format!("'{}'", &self.input[tok.start..tok.end]),
        }
    }

    /// `Or <- And ("or" And)*`. `depth` counts the enclosing parentheses and
    /// `not`s; chains do not deepen it because they are built flat.
    fn or_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and_expr(depth)?];
        while self.eat_keyword("or") {
            terms.push(self.and_expr(depth)?);
        }
        Ok(flatten(terms, Expr::Or))
    }

    /// `And <- Not ("and" Not)*`.
    fn and_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let mut terms = vec![self.not_expr(depth)?];
        while self.eat_keyword("and") {
            terms.push(self.not_expr(depth)?);
        }
        Ok(flatten(terms, Expr::And))
    }

    /// `Not <- "not" Not / Primary`: `not` binds tighter than `and`.
    fn not_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if !Self::is_keyword(self.peek(), "not") {
            return self.primary(depth);
        }
        let tok = self.bump();
        self.check_depth(&tok, depth)?;
        // `not not X` is X, as in go-bexpr.
        Ok(match self.not_expr(depth + 1)? {
            Expr::Not(inner) => *inner,
            other => Expr::Not(Box::new(other)),
        })
    }

    /// `Primary <- "(" Or ")" / Match`.
    fn primary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if !matches!(self.peek().kind, Kind::LParen) {
            return self.matcher();
        }
        let open = self.bump();
        self.check_depth(&open, depth)?;
        let expr = self.or_expr(depth + 1)?;
        let close = self.peek();
        match close.kind {
            Kind::RParen => {
                self.bump();
                Ok(expr)
            }
            Kind::Eof => Err(self.error(
                open.start,
                "Unmatched parentheses: this '(' is never closed",
            )),
            _ => Err(self.error(
                close.start,
                format!(
                    "expected \"and\", \"or\" or ')', found {}",
                    self.describe(close)
                ),
            )),
        }
    }

    fn check_depth(&self, tok: &Token, depth: usize) -> Result<(), FilterError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(
                tok.start,
                format!("expression nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// One matching expression: `Sel op [value]` or `value [not] in Sel`.
    fn matcher(&mut self) -> Result<Expr, FilterError> {
        let tok = self.bump();
        match tok.kind {
            // A keyword here means an operand is missing (`a == 1 and or b`).
            Kind::Word(selector) if !KEYWORDS.contains(&selector.text.as_str()) => {
                self.after_selector(selector)
            }
            Kind::Str(value) | Kind::Number(value) => self.after_value(value),
            _ => Err(self.error(
                tok.start,
                format!(
                    "expected a selector, a value or '(', found {}",
                    self.describe(&tok)
                ),
            )),
        }
    }

    /// The operator (and value) after a selector. A word followed by `in` or
    /// `not in` was a bare-word value after all and is handed to
    /// [`Parser::after_value`].
    fn after_selector(&mut self, selector: Selector) -> Result<Expr, FilterError> {
        let tok = self.peek().clone();
        let keyword = match &tok.kind {
            Kind::Equal | Kind::NotEqual => {
                self.bump();
                let value = self.value(&tok)?;
                let negated = matches!(tok.kind, Kind::NotEqual);
                return Ok(matcher(selector, Op::Equal(value), negated));
            }
            Kind::Word(word) => word.text.as_str(),
            _ => "",
        };
        let (op, negated) = match keyword {
            "is" => {
                self.bump();
                let negated = self.eat_keyword("not");
                if !self.eat_keyword("empty") {
                    let found = self.peek();
                    return Err(self.error(
                        found.start,
                        format!(
                            "expected \"empty\" or \"not empty\" after \"is\", found {}",
                            self.describe(found)
                        ),
                    ));
                }
                (Op::IsEmpty, negated)
            }
            "contains" => {
                self.bump();
                (Op::In(self.value(&tok)?), false)
            }
            "matches" => {
                self.bump();
                (self.regex(&tok)?, false)
            }
            // A bare word on the left of `in`: `primary in Service.Tags`.
            "in" => return self.after_value(selector.text),
            "not" => {
                // `not` is not Eof, so a token follows it. Decide before
                // consuming anything: `not in` belongs to the value form.
                let after = self.tokens[self.next + 1].clone();
                if Self::is_keyword(&after, "in") {
                    return self.after_value(selector.text);
                }
                self.bump();
                self.bump();
                if Self::is_keyword(&after, "contains") {
                    (Op::In(self.value(&after)?), true)
                } else if Self::is_keyword(&after, "matches") {
                    (self.regex(&after)?, true)
                } else {
                    return Err(self.error(
                        after.start,
                        format!(
                            "expected \"in\", \"contains\" or \"matches\" after \"not\", found {}",
                            self.describe(&after)
                        ),
                    ));
                }
            }
            _ => {
                return Err(self.error(
                    tok.start,
                    format!(
                        "expected an operator (==, !=, is empty, is not empty, contains, \
                         matches, in) after selector {:?}, found {}",
                        selector.text,
                        self.describe(&tok)
                    ),
                ));
            }
        };
        Ok(matcher(selector, op, negated))
    }

    /// `value [not] in Selector`, the value already read.
    fn after_value(&mut self, value: String) -> Result<Expr, FilterError> {
        let negated = self.eat_keyword("not");
        if !self.eat_keyword("in") {
            let found = self.peek();
            return Err(self.error(
                found.start,
                format!(
                    "expected \"in\" or \"not in\" after value {value:?}, found {}",
                    self.describe(found)
                ),
            ));
        }
        let tok = self.bump();
        match tok.kind {
            Kind::Word(selector) if !KEYWORDS.contains(&selector.text.as_str()) => {
                Ok(matcher(selector, Op::In(value), negated))
            }
            _ => Err(self.error(
                tok.start,
                format!(
                    "Invalid selector: expected a selector after \"in\", found {}",
                    self.describe(&tok)
                ),
            )),
        }
    }

    /// The value after operator `op`: a string, a number or a bare word.
    fn value(&mut self, op: &Token) -> Result<String, FilterError> {
        let tok = self.bump();
        match tok.kind {
            Kind::Str(value) | Kind::Number(value) => Ok(value),
            Kind::Word(word) => Ok(word.text),
            _ => Err(self.error(
                tok.start,
                format!(
                    "expected a value after {}, found {}",
                    self.describe(op),
                    self.describe(&tok)
                ),
            )),
        }
    }

    /// A `matches` pattern, compiled now so a bad one is a 400 up front rather
    /// than a failure in the middle of filtering.
    fn regex(&mut self, op: &Token) -> Result<Op, FilterError> {
        let pattern = self.value(op)?;
        match Regex::new(&pattern) {
            Ok(re) => Ok(Op::Matches(re)),
            Err(e) => Err(FilterError::InvalidRegex {
                pattern,
                message: e.to_string(),
            }),
        }
    }
}

fn matcher(selector: Selector, op: Op, negated: bool) -> Expr {
    Expr::Match(Matcher {
        selector,
        op,
        negated,
    })
}

/// A one-term chain is just the term.
fn flatten(mut terms: Vec<Expr>, chain: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.remove(0)
    } else {
        chain(terms)
    }
}
