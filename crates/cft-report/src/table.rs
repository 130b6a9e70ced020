//! A small table model rendered three ways: Markdown (for READMEs), CSV (for tools) and LaTeX
//! with booktabs rules (for papers).

use cft_results::ExperimentResults;

/// A rectangular table of strings with a header and an optional caption.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Caption (Markdown: a line above; LaTeX: `\caption`).
    pub caption: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells, each as long as the header.
    pub rows: Vec<Vec<String>>,
    /// Optional link target per cell (Markdown renders the cell as a link); empty = none.
    pub links: Vec<Vec<Option<String>>>,
}

impl Table {
    /// GitHub-flavoured Markdown.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        if !self.caption.is_empty() {
            s.push_str(&format!("{}\n\n", self.caption));
        }
        s.push_str(&format!("| {} |\n", self.header.join(" | ")));
        // Text columns left, numbers right: the first two, and any whose cells all start with a letter.
        let text = |j: usize| self.rows.iter().all(|r| r.get(j).is_some_and(|c| c.starts_with(char::is_alphabetic)));
        let align: Vec<&str> = (0..self.header.len())
            .map(|i| if i < 2 || (!self.rows.is_empty() && text(i)) { "---" } else { "---:" })
            .collect();
        s.push_str(&format!("|{}|\n", align.join("|")));
        for (i, r) in self.rows.iter().enumerate() {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(j, c)| match self.links.get(i).and_then(|l| l.get(j)).and_then(Option::as_ref) {
                    Some(target) => format!("[{c}]({target})"),
                    None => c.clone(),
                })
                .collect();
            s.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        s
    }

    /// RFC 4180 CSV (fields with commas, quotes or newlines are quoted).
    pub fn to_csv(&self) -> String {
        let field = |f: &str| {
            if f.contains([',', '"', '\n']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        };
        let line = |r: &[String]| r.iter().map(|f| field(f)).collect::<Vec<_>>().join(",");
        let mut s = line(&self.header) + "\n";
        for r in &self.rows {
            s.push_str(&line(r));
            s.push('\n');
        }
        s
    }

    /// A LaTeX `table` with a booktabs `tabular` (needs `\usepackage{booktabs}`).
    pub fn to_latex(&self) -> String {
        let esc = |f: &str| {
            f.replace('\\', "\\textbackslash{}")
                .replace('&', "\\&")
                .replace('%', "\\%")
                .replace('_', "\\_")
                .replace('#', "\\#")
        };
        let cols: String = (0..self.header.len()).map(|i| if i < 2 { 'l' } else { 'r' }).collect();
        let mut s = format!(
            "\\begin{{table}}[t]\n\\centering\n\\caption{{{}}}\n\\begin{{tabular}}{{{cols}}}\n\\toprule\n",
            esc(&self.caption)
        );
        s.push_str(&format!(
            "{} \\\\\n\\midrule\n",
            self.header.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" & ")
        ));
        for r in &self.rows {
            s.push_str(&format!("{} \\\\\n", r.iter().map(|h| esc(h)).collect::<Vec<_>>().join(" & ")));
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        s
    }
}

/// Formats a score in (0, 1) as a percentage with two decimals; `—` when undefined.
pub fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |x| format!("{:.2}", 100.0 * x))
}

/// A known-label proportion as a column heading: whole percent (`10%`), or two significant
/// digits below 1% (OpenImages' real labels: `0.046%` known, not `0%`).
pub fn known_percent(p: f64) -> String {
    let pct = 100.0 * p;
    if pct >= 1.0 || pct <= 0.0 {
        format!("{pct:.0}%")
    } else {
        let digits = (1 - pct.log10().floor() as i32).max(0) as usize;
        format!("{pct:.digits$}%")
    }
}

/// The partial-label table in the paper's partial-COCO layout: one row per (method,
/// protocol), columns for each known-label proportion and their average, in %. In Markdown each
/// of our cells links to the run that produced it (`link_prefix` + the cell's run path).
pub fn partial_label_table(res: &ExperimentResults, link_prefix: &str) -> Table {
    let mut header = vec!["Method".to_string(), "Protocol".to_string()];
    header.extend(res.proportions.iter().map(|p| match &res.real_labels {
        Some(label) => label.clone(),
        None => known_percent(*p),
    }));
    header.push("Avg".to_string());
    let rows = res
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![r.method.clone(), r.protocol.label().to_string()];
            row.extend(r.cells.iter().map(|c| pct(c.mean)));
            row.push(pct(r.average()));
            row
        })
        .collect();
    let links = res
        .rows
        .iter()
        .map(|r| {
            let mut l = vec![None, None];
            l.extend(r.cells.iter().map(|c| c.run.as_ref().map(|p| format!("{link_prefix}{p}"))));
            l.push(None);
            l
        })
        .collect();
    let by =
        if res.real_labels.is_some() { "with the dataset's real partial labels" } else { "by known-label proportion" };
    let mut caption = format!(
        "{} {} (%) on the {} {by}. Protocol `paper`: CFT epochs selected on the {}, as the reference does; `held-out`: selected on 20% of the training images.",
        res.dataset,
        res.metric,
        res.evaluation(),
        res.evaluation()
    );
    for n in &res.notes {
        caption.push(' ');
        caption.push_str(n);
    }
    Table { caption, header, rows, links }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_percent_keeps_two_digits_below_one_percent() {
        assert_eq!(known_percent(0.1), "10%");
        assert_eq!(known_percent(0.388), "39%");
        assert_eq!(known_percent(0.000463), "0.046%");
        assert_eq!(known_percent(0.0052), "0.52%");
    }

    #[test]
    fn renders_escape_special_characters() {
        let t = Table {
            caption: "a_b".into(),
            header: vec!["M".into(), "P".into(), "10%".into()],
            rows: vec![vec!["x, y".into(), "p".into(), "1.00".into()]],
            links: vec![vec![None, None, Some("r.json".into())]],
        };
        assert_eq!(t.to_csv(), "M,P,10%\n\"x, y\",p,1.00\n");
        assert!(t.to_latex().contains("10\\% \\\\"));
        assert!(t.to_latex().contains("\\toprule"));
        assert!(t.to_markdown().contains("| x, y | p | [1.00](r.json) |"));
    }
}
