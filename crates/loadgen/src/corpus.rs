//! `corpus`: a deterministic NDJSON corpus for `article-service import`.

use std::io::{BufWriter, Write};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use time::OffsetDateTime;

pub const WORDS: &[&str] = &[
    "government",
    "minister",
    "election",
    "market",
    "talks",
    "security",
    "economy",
    "climate",
    "energy",
    "border",
    "court",
    "report",
    "officials",
    "agreement",
    "summit",
    "prices",
    "growth",
    "crisis",
    "vote",
    "health",
    "science",
    "league",
    "final",
    "season",
    "company",
    "shares",
    "trade",
    "policy",
    "city",
    "river",
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "after",
    "over",
];

/// Tag `rank` (0 = most popular) of the corpus.
pub fn tag_name(rank: usize) -> String {
    format!("Section {rank:04}")
}

pub fn corpus(articles: usize, tags: usize, seed: u64, out: &str) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let popularity = Zipf::new(tags as f64, 1.1)?;
    let start = OffsetDateTime::from_unix_timestamp(1_609_459_200)?; // 2021-01-01
    let span_seconds = 5 * 365 * 24 * 3600;
    let writer: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out)?)
    };
    let mut writer = BufWriter::with_capacity(1 << 20, writer);
    for n in 0..articles {
        let title_words = rng.random_range(5..12);
        let mut title: Vec<&str> = (0..title_words)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        let number = n.to_string();
        title.push(&number); // unique titles, so derived slugs are unique
        let title = title.join(" ");
        let mut title_chars = title.chars();
        let title: String = title_chars
            .next()
            .map(|first| first.to_uppercase().chain(title_chars).collect())
            .unwrap_or_default();
        let body_len = rng.random_range(2_000..6_000);
        let mut body = String::with_capacity(body_len + 16);
        while body.len() < body_len {
            if !body.is_empty() {
                body.push_str(if rng.random_bool(0.1) { ".\n\n" } else { " " });
            }
            body.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
        body.push('.');
        let tag_count = rng.random_range(1..=5);
        let mut article_tags: Vec<String> = Vec::with_capacity(tag_count);
        while article_tags.len() < tag_count {
            let name = tag_name(popularity.sample(&mut rng) as usize - 1);
            if !article_tags.contains(&name) {
                article_tags.push(name);
            }
        }
        let published_at = start + time::Duration::seconds(rng.random_range(0..span_seconds));
        let record = serde_json::json!({
            "title": title,
            "summary": format!("Summary of article {n}."),
            "body": body,
            "byline": format!("Desk {}", n % 50),
            "tags": article_tags,
            "published_at": published_at.format(&time::format_description::well_known::Rfc3339)?,
        });
        serde_json::to_writer(&mut writer, &record)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(())
}
