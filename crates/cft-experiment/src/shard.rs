//! `--shard i/n`: one task's share of a job array, parsed once for every command that splits
//! work (a grid's cells, a single spec's units, an extraction's images).

use crate::error::ExperimentError;

/// Shard `index` of `count` (`i/n`, 0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    /// Which shard (0-based, below `count`).
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// Whether item `k` of a sequence belongs to this shard (`k mod n = i`: cells and units,
    /// balanced, every item in exactly one shard).
    pub fn holds(self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// This shard's contiguous part of `n` items (images: each shard writes one range).
    pub fn range(self, n: usize) -> std::ops::Range<usize> {
        self.index * n / self.count..(self.index + 1) * n / self.count
    }

    /// As the pair `(i, n)`.
    pub fn pair(self) -> (usize, usize) {
        (self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = ExperimentError;
    fn from_str(s: &str) -> Result<Self, ExperimentError> {
        let bad = || ExperimentError::refused(format!("--shard {s}: expected i/n with 0 ≤ i < n"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_once_and_split_items_two_ways() {
        let s: Shard = "1/3".parse().unwrap();
        assert_eq!((s.index, s.count, s.to_string()), (1, 3, "1/3".to_string()));
        assert_eq!((0..7).filter(|&k| s.holds(k)).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(s.range(10), 3..6);
        let all: Vec<usize> = (0..3).flat_map(|i| Shard { index: i, count: 3 }.range(10)).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        for bad in ["3/3", "1", "a/2", "0/0", "-1/2"] {
            assert_eq!(
                bad.parse::<Shard>().unwrap_err().to_string(),
                format!("--shard {bad}: expected i/n with 0 ≤ i < n")
            );
        }
    }
}
