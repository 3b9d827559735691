//! The CLI's column tables: headers and rows of cells in, aligned text out.
//!
//! Owns the one way the CLI lines columns up, in kubectl's two styles:
//!
//! - [`render`], for listings (`get`, `top`, `api-resources`, `rollout history`,
//!   `cluster status`, `token list`, `config get-contexts`): the header line first,
//!   columns separated by 3 spaces (kubectl's printers), the last column not padded and
//!   no line ending in spaces. Headers are printed as given: kubectl's are upper case
//!   (`NAME`, `AGE`) except where kubectl itself does otherwise (`top`'s `CPU(cores)`).
//! - [`render_indented`], for the tables inside `describe`'s sections (`Conditions:`,
//!   `Events:`): `kubectl describe`'s form, headers as given (`Type`, `Reason`) underlined
//!   with dashes, columns separated by 2 spaces, every line indented.
//!
//! Widths count characters, not bytes. Rendering does no I/O.

/// A listing table: the header line, then one line per row, columns 3 spaces apart.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut lines = vec![header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>()];
    lines.extend(rows.iter().cloned());
    aligned(&lines, 0, 3)
}

/// A `describe` table: the header line, a line of dashes under each header, then one line
/// per row, columns 2 spaces apart, every line indented by `indent` spaces.
pub fn render_indented(indent: usize, header: &[&str], rows: &[Vec<String>]) -> String {
    let mut lines = vec![
        header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
        header
            .iter()
            .map(|h| "-".repeat(h.chars().count()))
            .collect(),
    ];
    lines.extend(rows.iter().cloned());
    aligned(&lines, indent, 2)
}

/// Pads every cell but a line's last to its column's width, `gap` spaces between columns.
fn aligned(lines: &[Vec<String>], indent: usize, gap: usize) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for line in lines {
        for (i, cell) in line.iter().enumerate() {
            let width = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(width),
                None => widths.push(width),
            }
        }
    }
    let mut out = String::new();
    for line in lines {
        let mut text = " ".repeat(indent);
        let last = line.len().saturating_sub(1);
        for (i, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count() + gap;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn listings_are_three_spaces_apart_with_the_last_column_unpadded() {
        let text = render(
            &["NAME", "READY", "AGE"],
            &[row(&["web-1", "1/1", "5s"]), row(&["a", "0/1", "12m"])],
        );
        assert_eq!(
            text,
            "NAME    READY   AGE\nweb-1   1/1     5s\na       0/1     12m\n"
        );
    }

    #[test]
    fn empty_trailing_cells_leave_no_trailing_spaces_and_widths_count_characters() {
        let text = render(
            &["ID", "LEADER", "PEER"],
            &[row(&["1", "", ""]), row(&["é", "*", "x"])],
        );
        assert_eq!(text, "ID   LEADER   PEER\n1\né    *        x\n");
    }

    #[test]
    fn a_row_longer_than_the_header_still_lines_up() {
        let text = render(&["A"], &[row(&["x", "y"]), row(&["long", "z"])]);
        assert_eq!(text, "A\nx      y\nlong   z\n");
    }

    #[test]
    fn describe_tables_are_indented_underlined_and_two_spaces_apart() {
        let text = render_indented(
            2,
            &["Type", "Status"],
            &[row(&["Available", "True"]), row(&["Progressing", "True"])],
        );
        assert_eq!(
            text,
            "  Type         Status\n  ----         ------\n  Available    True\n  Progressing  True\n"
        );
    }
}
