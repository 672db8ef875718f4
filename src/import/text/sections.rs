//! The tags line, split into the names of a [`SectionVocabulary`].

/// The news site's sections, the default vocabulary of tags lines.
pub const SITE_SECTIONS: [&str; 19] = [
    "Middle East",
    "Gulf",
    "Africa",
    "Europe",
    "US & Canada",
    "Russia",
    "Asia",
    "Latin America",
    "World",
    "Economy",
    "Business",
    "Technology",
    "Science",
    "Health",
    "Culture",
    "Lifestyle",
    "Sport",
    "Entertainment",
    "Opinion",
];

/// The section names a tags line is split into. [`Default`] is the site's
/// sections ([`SITE_SECTIONS`]); [`extend`](Self::extend) adds more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionVocabulary {
    /// In the order added; each with its words (never empty).
    sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Section {
    /// The words joined by single spaces: the tag name produced.
    name: String,
    words: Vec<String>,
}

impl Default for SectionVocabulary {
    fn default() -> Self {
        let mut vocabulary = Self::empty();
        vocabulary.extend(SITE_SECTIONS);
        vocabulary
    }
}

impl SectionVocabulary {
    /// A vocabulary without any section.
    pub fn empty() -> Self {
        Self {
            sections: Vec::new(),
        }
    }

    /// Adds section names (e.g. from repeated `--section NAME` flags). A name
    /// is its white-space-separated words: surrounding white space is
    /// ignored and inner runs of white space count as one space. Names
    /// without any word, and names already known, are skipped.
    pub fn extend<I>(&mut self, names: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for name in names {
            let words: Vec<String> = name
                .as_ref()
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            if words.is_empty() || self.sections.iter().any(|s| s.words == words) {
                continue;
            }
            self.sections.push(Section {
                name: words.join(" "),
                words,
            });
        }
    }

    /// The section names, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sections.iter().map(|s| s.name.as_str())
    }

    /// Whether `name` (compared word by word, exactly) is a known section.
    pub fn contains(&self, name: &str) -> bool {
        let words: Vec<&str> = name.split_whitespace().collect();
        !words.is_empty() && self.sections.iter().any(|s| s.words == words)
    }

    /// Splits a tags line into section names, longest match first: at each
    /// word, the longest section whose words are exactly the next words of
    /// the line (case included) is taken, falling back to a shorter one only
    /// if the longer one would leave the rest of the line unsplittable.
    /// Returns the names as the vocabulary spells them (words separated by
    /// one space), in line order, repeats included.
    ///
    /// `Err` carries the words that no section covers (those skipped by a
    /// greedy longest-match pass); it is never empty. A line without words
    /// splits into no names.
    pub fn split(&self, line: &str) -> Result<Vec<String>, Vec<String>> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut longest_first: Vec<&Section> = self.sections.iter().collect();
        longest_first.sort_by_key(|s| std::cmp::Reverse(s.words.len()));
        let matches_at = |at: usize, section: &Section| {
            words
                .get(at..at.saturating_add(section.words.len()))
                .is_some_and(|w| w.iter().zip(&section.words).all(|(a, b)| *a == b))
        };

        // choice[i]: the section to take at word i for the rest of the line
        // to split completely, computed from the end (no recursion, so no
        // stack depth that grows with the line).
        let n = words.len();
        let mut choice: Vec<Option<&Section>> = vec![None; n];
        let mut complete = vec![false; n + 1];
        if let Some(end) = complete.last_mut() {
            *end = true;
        }
        for at in (0..n).rev() {
            let found = longest_first.iter().copied().find(|section| {
                matches_at(at, section)
                    && complete
                        .get(at + section.words.len())
                        .copied()
                        .unwrap_or(false)
            });
            if let (Some(section), Some(slot), Some(done)) =
                (found, choice.get_mut(at), complete.get_mut(at))
            {
                *slot = Some(section);
                *done = true;
            }
        }

        if complete.first().copied().unwrap_or(false) {
            let mut names = Vec::new();
            let mut at = 0;
            while let Some(Some(section)) = choice.get(at) {
                names.push(section.name.clone());
                at += section.words.len();
            }
            return Ok(names);
        }

        let mut unmatched = Vec::new();
        let mut at = 0;
        while let Some(word) = words.get(at) {
            match longest_first.iter().find(|s| matches_at(at, s)) {
                Some(section) => at += section.words.len(),
                None => {
                    unmatched.push((*word).to_owned());
                    at += 1;
                }
            }
        }
        if unmatched.is_empty() {
            // Unreachable: a greedy pass that matches every word is a
            // complete split. Kept total rather than asserted.
            unmatched = words.iter().map(|w| (*w).to_owned()).collect();
        }
        Err(unmatched)
    }
}

/// The reason for a tags line that [`SectionVocabulary::split`] refused,
/// naming (some of) its `unmatched` words.
pub(super) fn unsplittable_tags_reason(unmatched: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut words: Vec<String> = unmatched
        .iter()
        .take(SHOWN)
        .map(|word| format!("{word:?}"))
        .collect();
    if unmatched.len() > SHOWN {
        words.push(format!("and {} more", unmatched.len() - SHOWN));
    }
    format!(
        "cannot split the tags line (the last non-empty line) into known sections; \
         unmatched words: {} (unknown sections can be added to the vocabulary)",
        words.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::super::parse_page_text;
    use super::super::sample::{SAMPLE, parse};
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unsplittable_tags_line_names_its_line_and_words() {
        let content = SAMPLE.replace("US & Canada Russia", "US & Kanada Russia Atlantis");
        let error = parse(&content).unwrap_err();
        assert_eq!(error.line, 27);
        assert!(error.reason.contains(r#""Kanada", "Atlantis""#), "{error}");
        assert!(!error.reason.contains(r#""Russia""#), "{error}");
        assert!(error.to_string().starts_with("line 27: "));

        // Partial words of a section are not a section.
        let content = SAMPLE.replace("US & Canada Russia", "US & Russia");
        let error = parse(&content).unwrap_err();
        assert_eq!(error.line, 27);
        assert!(error.reason.contains(r#""US", "&""#), "{error}");
        // Matching is exact, case included.
        let content = SAMPLE.replace("US & Canada Russia", "us & canada Russia");
        assert_eq!(parse(&content).unwrap_err().line, 27);
    }

    #[test]
    fn extended_vocabulary() {
        let content = SAMPLE.replace("US & Canada Russia", "Russia Arctic  Affairs US & Canada");
        assert!(parse(&content).is_err());
        let mut sections = SectionVocabulary::default();
        sections.extend(["  Arctic \t Affairs ", "", "Russia"]);
        assert!(sections.contains("Arctic Affairs"));
        assert_eq!(sections.names().count(), SITE_SECTIONS.len() + 1);
        let draft = parse_page_text(&content, &sections).unwrap();
        assert_eq!(draft.tags, ["Russia", "Arctic Affairs", "US & Canada"]);
    }

    #[test]
    fn split_takes_the_longest_match_that_completes_the_line() {
        let mut sections = SectionVocabulary::empty();
        sections.extend(["A", "A B", "B C", "C", "A B C D"]);
        let split = |line: &str| sections.split(line);
        assert_eq!(split("A B C"), Ok(vec!["A B".into(), "C".into()]));
        assert_eq!(split("A B C D"), Ok(vec!["A B C D".into()]));
        assert_eq!(split("A B C D A"), Ok(vec!["A B C D".into(), "A".into()]));
        assert_eq!(split("A B C"), Ok(vec!["A B".into(), "C".into()]));
        // A B then C is greedy; here only A then "B C" works.
        let mut sections = SectionVocabulary::empty();
        sections.extend(["A", "A B", "B C"]);
        assert_eq!(sections.split("A B C"), Ok(vec!["A".into(), "B C".into()]));
        assert_eq!(sections.split("A B D"), Err(vec!["D".into()]));
        assert_eq!(sections.split("   "), Ok(vec![]));
    }

    #[test]
    fn a_huge_tags_line_is_split_in_linear_time() {
        // 200,000 words: a quadratic or recursive split would take minutes
        // or overflow the stack.
        let line = "US & Canada Middle East Russia ".repeat(40_000);
        let names = SectionVocabulary::default()
            .split(&line)
            .unwrap_or_default();
        assert_eq!(names.len(), 120_000);
        let unmatched = SectionVocabulary::default().split(&format!("{line} Atlantis"));
        assert_eq!(unmatched, Err(vec!["Atlantis".to_owned()]));
    }

    #[test]
    fn the_reason_shows_at_most_20_words() {
        let words: Vec<String> = (0..25).map(|i| format!("w{i}")).collect();
        let reason = unsplittable_tags_reason(&words);
        assert!(reason.contains(r#""w19", and 5 more"#), "{reason}");
        assert!(!reason.contains(r#""w20""#), "{reason}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn split_never_panics(line in ".{0,80}", extra in proptest::collection::vec(".{0,12}", 0..4)) {
            let mut sections = SectionVocabulary::default();
            sections.extend(&extra);
            match sections.split(&line) {
                Ok(names) => prop_assert!(names.iter().all(|n| sections.contains(n))),
                Err(unmatched) => prop_assert!(!unmatched.is_empty()),
            }
        }
    }
}
