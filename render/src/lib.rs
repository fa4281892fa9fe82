//! dmarcpipe-render: pure functions from rows to text. No database, no I/O.
//!
//! The caller builds a [`Table`] (named columns, typed cells) from whatever rows it has; this
//! crate formats it as an aligned terminal table, CSV (RFC 4180, header row first) or JSON (an
//! array of objects keyed by column name, numbers as numbers, beyond 64 bits as strings). A
//! share (a fraction such as a failure rate) is a percentage in a terminal table and the
//! fraction itself in CSV and JSON.

pub mod digest;
pub mod report;

use comfy_table::{CellAlignment, ContentArrangement, LineStyle, TableStyle};
use serde_json::{Map, Value};

/// A value in a table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A whole number; sums of counts can exceed 64 bits.
    Int(i128),
    /// A fraction of a whole (0.0537 is 5.37 %).
    Share(f64),
    /// A measure shown as it is, such as a latitude.
    Number(f64),
    Null,
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell::Text(text.to_owned())
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell::Text(text)
    }
}

impl From<i64> for Cell {
    fn from(value: i64) -> Self {
        Cell::Int(value.into())
    }
}

impl From<i128> for Cell {
    fn from(value: i128) -> Self {
        Cell::Int(value)
    }
}

impl<T: Into<Cell>> From<Option<T>> for Cell {
    fn from(value: Option<T>) -> Self {
        value.map_or(Cell::Null, Into::into)
    }
}

impl Cell {
    /// As written in CSV: numbers are formatted into `buffer` (one buffer for a whole table,
    /// rather than a new string per number: a rollup by source has ten per row and a row per
    /// source).
    fn display<'a>(&'a self, buffer: &'a mut String) -> &'a str {
        match self {
            Cell::Text(text) => text,
            Cell::Int(value) => formatted(buffer, value),
            Cell::Share(fraction) | Cell::Number(fraction) => formatted(buffer, fraction),
            Cell::Null => "",
        }
    }

    /// As shown in a terminal table.
    fn display_for_people(&self) -> String {
        match self {
            Cell::Share(fraction) => format!("{:.2}%", fraction * 100.0),
            other => other.display(&mut String::new()).to_owned(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Cell::Text(text) => Value::String(text.clone()),
            // JSON numbers as 64-bit integers where they fit (what JSON readers take), else the
            // digits as a string.
            Cell::Int(value) => i64::try_from(*value).map_or_else(|_| Value::String(value.to_string()), Value::from),
            Cell::Share(fraction) | Cell::Number(fraction) => Value::from(*fraction),
            Cell::Null => Value::Null,
        }
    }
}

/// Named columns and rows of cells. Names key CSV headers and JSON objects; a terminal
/// table shows the titles, which may be shorter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub titles: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        let columns: Vec<String> = columns.into_iter().map(Into::into).collect();
        Table { titles: columns.clone(), columns, rows: Vec::new() }
    }

    /// Columns as `(name, title)` pairs.
    pub fn titled<'a>(columns: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let (columns, titles) = columns.into_iter().map(|(name, title)| (name.to_owned(), title.to_owned())).unzip();
        Table { columns, titles, rows: Vec::new() }
    }

    /// Adds a row; it must have a cell for every column.
    pub fn push(&mut self, row: Vec<Cell>) {
        assert_eq!(
            row.len(),
            self.columns.len(),
            "a row of {} cells in a table of {} columns",
            row.len(),
            self.columns.len()
        );
        self.rows.push(row);
    }
}

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Renders `table` in `format`; text output ends with a newline.
pub fn render(table: &Table, format: Format) -> String {
    match format {
        Format::Table => text_table(table),
        Format::Csv => csv(table),
        Format::Json => json(table),
    }
}

/// An aligned table for a terminal; numbers right-aligned. An empty table says so.
pub fn text_table(table: &Table) -> String {
    if table.rows.is_empty() {
        return "(no rows)\n".to_owned();
    }
    // A rule under the header and nothing else: easy to read, easy to paste.
    const STYLE: TableStyle = TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));
    let mut out = comfy_table::Table::new();
    out.load_style(STYLE);
    out.set_content_arrangement(ContentArrangement::Disabled);
    out.set_header(table.titles.iter().map(comfy_table::Cell::new));
    for row in &table.rows {
        out.add_row(row.iter().map(|cell| {
            let formatted = comfy_table::Cell::new(cell.display_for_people());
            match cell {
                Cell::Int(_) | Cell::Share(_) | Cell::Number(_) => formatted.set_alignment(CellAlignment::Right),
                _ => formatted,
            }
        }));
    }
    format!("{out}\n")
}

/// CSV with a header row.
pub fn csv(table: &Table) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(&table.columns);
    let mut number = String::new();
    for row in &table.rows {
        for cell in row {
            let _ = writer.write_field(cell.display(&mut number).as_bytes());
        }
        let _ = writer.write_record(None::<&[u8]>);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// `value` written into `buffer`, emptied first.
fn formatted<'a>(buffer: &'a mut String, value: &impl std::fmt::Display) -> &'a str {
    use std::fmt::Write as _;
    buffer.clear();
    // Writing to a String cannot fail.
    let _ = write!(buffer, "{value}");
    buffer
}

/// A JSON array of objects, one per row.
pub fn json(table: &Table) -> String {
    let rows: Vec<Value> = table
        .rows
        .iter()
        .map(|row| {
            let object: Map<String, Value> =
                table.columns.iter().zip(row).map(|(column, cell)| (column.clone(), cell.json())).collect();
            Value::Object(object)
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&Value::Array(rows)).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(["source", "messages"]);
        table.push(vec!["192.0.2.1".into(), 1200i64.into()]);
        table.push(vec!["a, \"quoted\" name".into(), Cell::Null]);
        table
    }

    #[test]
    fn csv_quotes_and_has_a_header() {
        assert_eq!(csv(&sample()), "source,messages\n192.0.2.1,1200\n\"a, \"\"quoted\"\" name\",\n");
    }

    #[test]
    fn json_is_an_array_of_objects_with_numbers() {
        let value: Value = serde_json::from_str(&json(&sample())).expect("valid JSON");
        assert_eq!(value[0]["messages"], Value::from(1200));
        assert_eq!(value[1]["messages"], Value::Null);
        assert_eq!(value[1]["source"], "a, \"quoted\" name");
    }

    #[test]
    fn shares_are_percentages_for_people_and_fractions_for_programs() {
        let mut table = Table::new(["key", "share"]);
        table.push(vec!["a".into(), Cell::Share(0.0537)]);
        assert!(text_table(&table).lines().any(|line| line.trim_end().ends_with("5.37%")));
        assert_eq!(csv(&table), "key,share\na,0.0537\n");
        let value: Value = serde_json::from_str(&json(&table)).expect("valid JSON");
        assert_eq!(value[0]["share"], Value::from(0.0537));
    }

    #[test]
    fn numbers_are_shown_as_they_are() {
        let mut table = Table::new(["latitude", "longitude"]);
        table.push(vec![Cell::Number(48.8582), Cell::Number(-2.5)]);
        assert!(text_table(&table).lines().any(|line| line.trim_end().ends_with("-2.5")));
        assert_eq!(csv(&table), "latitude,longitude\n48.8582,-2.5\n");
        let value: Value = serde_json::from_str(&json(&table)).expect("valid JSON");
        assert_eq!(value[0]["latitude"], Value::from(48.8582));
    }

    #[test]
    fn text_tables_align_numbers_and_say_when_empty() {
        let text = text_table(&sample());
        assert!(text.contains("192.0.2.1"));
        assert!(text.lines().any(|line| line.trim_end().ends_with("1200")));
        assert_eq!(text_table(&Table::new(["a"])), "(no rows)\n");
    }
}
