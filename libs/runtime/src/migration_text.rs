//! Migration text as Citus takes it. Where Citus holds a table, it passes a DDL command's text
//! on to its nodes as one prepared statement, and refuses text holding several statements
//! ("cannot insert multiple commands into a prepared statement"). So a migration of several
//! statements runs as one DO block that EXECUTEs each in turn, in the migration's transaction:
//! every DDL command then reaches Citus on its own, on a single server as on a cluster.

use std::borrow::Cow;

/// `sql` as one command: itself if it holds at most one statement, else a DO block running
/// its statements in order.
pub fn as_one_command(sql: &str) -> Cow<'_, str> {
    let statements = statements(sql);
    if statements.len() <= 1 {
        return Cow::Borrowed(sql);
    }
    let mut tag = String::from("$migration$");
    let mut n = 0;
    while sql.contains(&tag) {
        n += 1;
        tag = format!("$migration{n}$");
    }
    let mut block = format!("DO {tag} BEGIN\n");
    for statement in statements {
        // A standard string literal: only the quote is doubled (backslashes stay as written).
        block.push_str("EXECUTE '");
        block.push_str(&statement.replace('\'', "''"));
        block.push_str("';\n");
    }
    block.push_str("END ");
    block.push_str(&tag);
    Cow::Owned(block)
}

/// The statements of `sql`, split at semicolons outside comments, quoted strings, quoted
/// identifiers and dollar-quoted bodies; each keeps its comments, and text of only
/// comments and whitespace is no statement.
fn statements(sql: &str) -> Vec<&str> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut has_code = false;
    let mut i = 0;
    // Only ASCII bytes are matched, and in UTF-8 those never occur inside another character.
    while i < bytes.len() {
        let rest = &bytes[i..];
        match bytes[i] {
            b'-' if rest.starts_with(b"--") => {
                i = find(bytes, i + 2, b"\n").map_or(bytes.len(), |end| end + 1);
                continue;
            }
            b'/' if rest.starts_with(b"/*") => {
                i = block_comment_end(bytes, i);
                continue;
            }
            b';' => {
                if has_code {
                    out.push(&sql[start..i]);
                }
                start = i + 1;
                has_code = false;
                i += 1;
                continue;
            }
            b if b.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'\'' => {
                // E'...' takes backslash escapes; a standard string only doubled quotes.
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'E' | b'e')
                    && (i < 2 || !is_identifier_byte(bytes[i - 2]));
                i = quoted_end(bytes, i, b'\'', escapes);
            }
            b'"' => i = quoted_end(bytes, i, b'"', false),
            b'$' if i == 0 || !is_identifier_byte(bytes[i - 1]) => match dollar_tag(rest) {
                Some(tag) => {
                    let body = i + tag.len();
                    i = find(bytes, body, tag).map_or(bytes.len(), |end| end + tag.len());
                }
                None => i += 1,
            },
            _ => i += 1,
        }
        has_code = true;
    }
    if has_code {
        out.push(&sql[start..]);
    }
    out
}

fn is_identifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Where `needle` first occurs in `bytes` at or after `from`.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The end (exclusive) of the block comment opening at `start`; they nest.
fn block_comment_end(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"/*") {
            depth += 1;
            i += 2;
        } else if bytes[i..].starts_with(b"*/") {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The end (exclusive) of the text quoted by `quote` opening at `start`: a doubled quote is
/// one quote, and with `escapes` a backslash takes the byte after it.
fn quoted_end(bytes: &[u8], start: usize, quote: u8, escapes: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        if escapes && bytes[i] == b'\\' {
            i += 2;
        } else if bytes[i] == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The dollar-quote tag (`$$` or `$name$`) that `text` starts with, if any.
fn dollar_tag(text: &[u8]) -> Option<&[u8]> {
    let name_len = text[1..]
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b >= 0x80))?;
    let first = text.get(1).copied()?;
    if name_len > 0 && first.is_ascii_digit() {
        return None; // a parameter such as $1
    }
    (text.get(1 + name_len) == Some(&b'$')).then(|| &text[..name_len + 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_at_semicolons_outside_comments_strings_and_bodies() {
        let sql = "-- the table's comment; with a semicolon\n\
                   CREATE TABLE t (a text CHECK (a <> ';'), \"b;c\" int);\n\
                   /* a block; /* nested; */ still comment; */\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n\
                   CREATE FUNCTION g() RETURNS text LANGUAGE sql AS $body$ SELECT 'x;y' $body$;\n\
                   SELECT E'it\\'s; fine', 'it''s; fine', $1;\n\
                   -- only a comment after the last one; nothing to run\n";
        let statements = statements(sql);
        assert_eq!(statements.len(), 4, "{statements:#?}");
        assert!(
            statements[0]
                .trim_start()
                .starts_with("-- the table's comment")
        );
        assert!(statements[0].ends_with("\"b;c\" int)"));
        assert!(statements[1].contains("nested; */ still comment; */"));
        assert!(statements[1].ends_with("END $$"));
        assert!(statements[2].ends_with("SELECT 'x;y' $body$"));
        assert!(statements[3].ends_with("'it''s; fine', $1"));
    }

    #[test]
    fn one_statement_is_left_as_written() {
        let sql = "-- why\nCREATE INDEX i ON t USING brin (c);\n";
        assert!(matches!(as_one_command(sql), Cow::Borrowed(s) if s == sql));
        assert!(matches!(as_one_command("-- nothing\n"), Cow::Borrowed(_)));
    }

    #[test]
    fn several_statements_become_one_block_executing_each_with_quotes_doubled() {
        let sql = "ALTER TABLE t ADD CHECK (a <> 'x');\nCREATE FUNCTION f() RETURNS int \
                   LANGUAGE sql AS $$ SELECT 1 $$; -- $migration$ in a comment\n";
        assert_eq!(
            as_one_command(sql),
            "DO $migration1$ BEGIN\n\
             EXECUTE 'ALTER TABLE t ADD CHECK (a <> ''x'')';\n\
             EXECUTE '\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$';\n\
             END $migration1$"
        );
    }
}
