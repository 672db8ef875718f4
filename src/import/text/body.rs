//! The body: the lines between the publication date and the tags line,
//! joined into paragraphs.

use super::{Line, is_blank};

/// Consecutive non-blank lines joined by `\n` form a paragraph; paragraphs
/// are joined by `\n\n`.
pub(super) fn join_paragraphs(lines: &[Line<'_>]) -> String {
    let mut body = String::new();
    let mut in_paragraph = false;
    let mut paragraphs = 0usize;
    for line in lines {
        if is_blank(line.text) {
            in_paragraph = false;
            continue;
        }
        if in_paragraph {
            body.push('\n');
        } else {
            if paragraphs > 0 {
                body.push_str("\n\n");
            }
            paragraphs += 1;
            in_paragraph = true;
        }
        body.push_str(line.text);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::sample::parse;
    use super::*;

    fn joined(text: &str) -> String {
        let lines: Vec<Line<'_>> = text
            .split('\n')
            .enumerate()
            .map(|(index, text)| Line {
                number: index + 1,
                text,
            })
            .collect();
        join_paragraphs(&lines)
    }

    #[test]
    fn paragraphs_are_runs_of_non_blank_lines() {
        assert_eq!(joined(""), "");
        assert_eq!(joined("\n \n\t"), "");
        assert_eq!(joined("One"), "One");
        assert_eq!(joined("\n\nOne\ntwo\n\n \n\nThree\n"), "One\ntwo\n\nThree");
    }

    #[test]
    fn paragraph_lines_and_surrounding_white_space_are_kept() {
        let content = "  Title  \n\tByline\nTue, 31 Dec 2019 10:30 GMT\n\n  indented\nsecond line \n \t \nnext\n\nRussia Gulf  ";
        let draft = parse(content).unwrap();
        assert_eq!(draft.title, "Title");
        assert_eq!(draft.byline, "Byline");
        assert_eq!(draft.body, "  indented\nsecond line \n\nnext");
        assert_eq!(draft.tags, ["Russia", "Gulf"]);
    }
}
