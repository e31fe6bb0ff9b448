//! JSON documents written piece by piece, laid out byte for byte as
//! `serde_json::to_string_pretty` lays out the whole document. Why: the
//! documents that list every entry of a snapshot (`ls`, `show`, `diff`)
//! were built as one `Value` first, about 2 KiB of tree per entry: 230 MiB for
//! a snapshot of 100,000 files, gigabytes for a million. Here only the
//! small top of a document is a `Value`; its long arrays come from an
//! iterator, one item's `Value` at a time.
//!
//! The layout rule this relies on: in pretty output every newline is
//! structural (a newline inside a string is written `\n`), and what
//! follows it is indented two spaces a level. A value written at depth
//! `d` is therefore its own pretty text with `2 * d` spaces after each
//! newline.
//!
//! Write errors keep their kind through serde_json (`io::Error::from`):
//! a reader that stops reading is a broken pipe, which the CLI lets pass,
//! not any other error.

use std::io::{self, Write};

use serde_json::{Map, Value};

/// What one field of an object is written as.
pub enum Field {
    /// The map's own value.
    AsIs,
    /// Written by the caller's writer instead (a streamed array).
    Written,
}

/// Writes `value` at depth `depth`: its pretty text, indented.
pub fn write_value(out: &mut dyn Write, value: &Value, depth: usize) -> io::Result<()> {
    let mut indented = Indented {
        out,
        pad: indent(depth),
    };
    serde_json::to_writer_pretty(&mut indented, value).map_err(io::Error::from)
}

/// Passes bytes on, with `pad` after every newline.
struct Indented<'a> {
    out: &'a mut dyn Write,
    pad: String,
}

impl Write for Indented<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            self.out.write_all(&rest[..=at])?;
            self.out.write_all(self.pad.as_bytes())?;
            rest = &rest[at + 1..];
        }
        self.out.write_all(rest)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes `map` as an object at `depth`, in the map's order; `field` may
/// write a field's value itself (it is called right after the key), or
/// leave it to the map.
pub fn write_object(
    out: &mut dyn Write,
    map: &Map<String, Value>,
    depth: usize,
    field: &mut dyn FnMut(&str, &mut dyn Write, usize) -> io::Result<Field>,
) -> io::Result<()> {
    if map.is_empty() {
        return out.write_all(b"{}");
    }
    out.write_all(b"{")?;
    let pad = indent(depth + 1);
    for (i, (key, value)) in map.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        out.write_all(pad.as_bytes())?;
        serde_json::to_writer(&mut *out, key).map_err(io::Error::from)?;
        out.write_all(b": ")?;
        if let Field::AsIs = field(key, out, depth + 1)? {
            write_value(out, value, depth + 1)?;
        }
    }
    write!(out, "\n{}}}", indent(depth))
}

/// Writes an array at `depth` whose items `write_item` writes, one per
/// element of `items`, each at `depth + 1`.
pub fn write_array<T>(
    out: &mut dyn Write,
    items: impl IntoIterator<Item = T>,
    depth: usize,
    mut write_item: impl FnMut(&mut dyn Write, T, usize) -> io::Result<()>,
) -> io::Result<()> {
    out.write_all(b"[")?;
    let pad = indent(depth + 1);
    let mut any = false;
    for item in items {
        out.write_all(if any { b",\n" } else { b"\n" })?;
        any = true;
        out.write_all(pad.as_bytes())?;
        write_item(out, item, depth + 1)?;
    }
    if any {
        write!(out, "\n{}]", indent(depth))
    } else {
        out.write_all(b"]")
    }
}

/// Writes `docs` as an array at `depth`, one `Value` at a time.
pub fn write_values(
    out: &mut dyn Write,
    docs: impl IntoIterator<Item = Value>,
    depth: usize,
) -> io::Result<()> {
    write_array(out, docs, depth, |out, doc, depth| {
        write_value(out, &doc, depth)
    })
}

/// Writes the object `doc` whose array `list` holds objects with fields
/// too long to be held as `Value`s (`show`: the stores and their entries;
/// `diff`: the stores and their added, removed and changed entries):
/// `field(i, key, out, depth)` writes such a field of the `i`-th object
/// itself, or leaves it to the object.
pub fn write_with_list(
    out: &mut dyn Write,
    doc: &Value,
    list: &str,
    mut field: impl FnMut(usize, &str, &mut dyn Write, usize) -> io::Result<Field>,
) -> io::Result<()> {
    let Value::Object(top) = doc else {
        return write_value(out, doc, 0);
    };
    write_object(out, top, 0, &mut |key, out, depth| {
        let Some(Value::Array(items)) = top.get(list).filter(|_| key == list) else {
            return Ok(Field::AsIs);
        };
        write_array(
            out,
            items.iter().enumerate(),
            depth,
            |out, (i, item), depth| match item {
                Value::Object(item) => write_object(out, item, depth, &mut |key, out, depth| {
                    field(i, key, out, depth)
                }),
                other => write_value(out, other, depth),
            },
        )?;
        Ok(Field::Written)
    })
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn streamed(value: &Value) -> String {
        let mut out = Vec::new();
        write_value(&mut out, value, 0).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// An object whose `items` array is streamed from its own elements.
    fn with_items_streamed(doc: &Value) -> String {
        let map = doc.as_object().unwrap();
        let mut out = Vec::new();
        write_object(&mut out, map, 0, &mut |key, out, depth| {
            if key != "items" {
                return Ok(Field::AsIs);
            }
            let items = map["items"].as_array().unwrap();
            write_array(out, items, depth, |out, item, depth| {
                write_value(out, item, depth)
            })?;
            Ok(Field::Written)
        })
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_streamed_document_is_the_pretty_document_byte_for_byte() {
        let docs = [
            json!({
                "a": 1,
                "items": [
                    {"path": "line\nbreak \"quoted\" {not: json}", "size": null, "deep": {"x": [1, [], {}]}},
                    {},
                    [],
                    "plain",
                    {"nested": [{"k": [true, false]}]}
                ],
                "z": {"empty": {}, "none": [], "text": "\u{e9}\u{0}\t"}
            }),
            json!({"items": [], "id": "20261206T120000Z"}),
            json!({"items": [7]}),
            json!({"id": "x"}),
        ];
        for doc in &docs {
            let expected = serde_json::to_string_pretty(doc).unwrap();
            assert_eq!(streamed(doc), expected);
            assert_eq!(with_items_streamed(doc), expected);
        }
        assert_eq!(with_items_streamed(&json!({})), "{}");
    }
}
