//! numpy-compatible random numbers: `SeedSequence` seeding, the PCG64 bit generator and
//! `Generator.random()` doubles, bit for bit.
//!
//! The reference implementation drops labels with `numpy.random.Generator(PCG64(526))`; to load
//! the very masks the authors trained with, our generator must produce the same stream. The
//! same generator drives the GA, seeded per category with `[seed, category]` as entropy, so a
//! category's random stream does not depend on which thread or batch runs it.

const MULT_A: u32 = 0x931e_8875;
const INIT_A: u32 = 0x43b0_d7e5;
const MULT_B: u32 = 0x58f3_8ded;
const INIT_B: u32 = 0x8b51_f9dd;
const MIX_MULT_L: u32 = 0xca01_f9dd;
const MIX_MULT_R: u32 = 0x4973_f715;
const XSHIFT: u32 = 16;
const POOL_SIZE: usize = 4;

/// numpy's `SeedSequence`: turns user entropy into well-mixed seed words.
#[derive(Debug, Clone)]
pub struct SeedSequence {
    pool: [u32; POOL_SIZE],
}

fn hashmix(value: u32, hash_const: &mut u32) -> u32 {
    let mut v = value ^ *hash_const;
    *hash_const = hash_const.wrapping_mul(MULT_A);
    v = v.wrapping_mul(*hash_const);
    v ^ (v >> XSHIFT)
}

fn mix(x: u32, y: u32) -> u32 {
    let r = MIX_MULT_L.wrapping_mul(x).wrapping_sub(MIX_MULT_R.wrapping_mul(y));
    r ^ (r >> XSHIFT)
}

/// Splits integers into little-endian 32-bit words, as numpy's `_coerce_to_uint32_array` does.
fn entropy_words(values: &[u64]) -> Vec<u32> {
    let mut words = Vec::new();
    for &v in values {
        // numpy writes each integer as the fewest 32-bit words that hold it (at least one).
        let (lo, hi) = (v as u32, (v >> 32) as u32);
        words.push(lo);
        if hi != 0 {
            words.push(hi);
        }
    }
    words
}

impl SeedSequence {
    /// `SeedSequence(entropy)` for one integer seed, as `PCG64(seed)` builds it.
    pub fn new(seed: u64) -> Self {
        Self::from_words(&entropy_words(&[seed]))
    }

    /// `SeedSequence([a, b, …])` for a list of non-negative integers, each below 2³².
    pub fn from_entropy(values: &[u32]) -> Self {
        Self::from_words(values)
    }

    fn from_words(entropy: &[u32]) -> Self {
        let mut pool = [0u32; POOL_SIZE];
        let mut hash_const = INIT_A;
        for (i, slot) in pool.iter_mut().enumerate() {
            *slot = hashmix(entropy.get(i).copied().unwrap_or(0), &mut hash_const);
        }
        for i_src in 0..POOL_SIZE {
            for i_dst in 0..POOL_SIZE {
                if i_src != i_dst {
                    let h = hashmix(pool[i_src], &mut hash_const);
                    pool[i_dst] = mix(pool[i_dst], h);
                }
            }
        }
        for &word in entropy.iter().skip(POOL_SIZE) {
            for slot in pool.iter_mut() {
                let h = hashmix(word, &mut hash_const);
                *slot = mix(*slot, h);
            }
        }
        Self { pool }
    }

    /// `generate_state(n, np.uint64)`: `n` 64-bit words made of pairs of 32-bit words.
    pub fn generate_state_u64(&self, n: usize) -> Vec<u64> {
        let mut hash_const = INIT_B;
        let words: Vec<u32> = (0..2 * n)
            .map(|i| {
                let mut v = self.pool[i % POOL_SIZE] ^ hash_const;
                hash_const = hash_const.wrapping_mul(MULT_B);
                v = v.wrapping_mul(hash_const);
                v ^ (v >> XSHIFT)
            })
            .collect();
        words.chunks_exact(2).map(|p| u64::from(p[0]) | (u64::from(p[1]) << 32)).collect()
    }
}

const PCG_MULT: u128 = 0x2360_ed05_1fc6_5da4_4385_df64_9fcc_f645;

/// The PCG64 (XSL-RR 128/64) bit generator, seeded as numpy's `PCG64(seed)`.
#[derive(Debug, Clone)]
pub struct Pcg64 {
    state: u128,
    inc: u128,
}

impl Pcg64 {
    /// `numpy.random.PCG64(seed)`.
    pub fn new(seed: u64) -> Self {
        Self::from_seed_sequence(&SeedSequence::new(seed))
    }

    /// A generator seeded from an explicit `SeedSequence`.
    pub fn from_seed_sequence(seq: &SeedSequence) -> Self {
        let s = seq.generate_state_u64(4);
        let initstate = (u128::from(s[0]) << 64) | u128::from(s[1]);
        let initseq = (u128::from(s[2]) << 64) | u128::from(s[3]);
        let mut rng = Self { state: 0, inc: (initseq << 1) | 1 };
        rng.step();
        rng.state = rng.state.wrapping_add(initstate);
        rng.step();
        rng
    }

    /// A generator for one category of a seeded run: entropy `[seed_lo, seed_hi, stream]`.
    /// Independent streams per category make results independent of thread count and order.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        Self::from_seed_sequence(&SeedSequence::from_entropy(&[
            seed as u32,
            (seed >> 32) as u32,
            stream as u32,
            (stream >> 32) as u32,
        ]))
    }

    fn step(&mut self) {
        self.state = self.state.wrapping_mul(PCG_MULT).wrapping_add(self.inc);
    }

    /// The next raw 64-bit output (`bit_generator.random_raw()`).
    pub fn next_u64(&mut self) -> u64 {
        self.step();
        let hi = (self.state >> 64) as u64;
        let lo = self.state as u64;
        let rot = (self.state >> 122) as u32;
        (hi ^ lo).rotate_right(rot)
    }

    /// `Generator.random()`: a double in [0, 1) from the top 53 bits.
    pub fn random(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A uniform double in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.random()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_526_first_raw_outputs_match_numpy() {
        // numpy 2.4: PCG64(526).random_raw(2); the full stream is checked against the fixture
        // in tests/fixtures.rs.
        let mut rng = Pcg64::new(526);
        assert_eq!(rng.next_u64(), 6256374009392191366);
        assert_eq!(rng.next_u64(), 855126778543273017);
    }

    #[test]
    fn streams_differ_per_category() {
        let a = Pcg64::for_stream(1, 0).next_u64();
        let b = Pcg64::for_stream(1, 1).next_u64();
        assert_ne!(a, b);
    }
}

/// numpy's legacy `RandomState` bit generator, MT19937 seeded by an integer
/// (`np.random.RandomState(seed)`: Matsumoto and Nishimura's `init_genrand`), with the two
/// draws the single-positive protocol of Cole et al. uses: 32-bit outputs and
/// `RandomState.shuffle` of a 1-D array. Bit for bit with numpy (`labels::single_positive`'s
/// fixture).
#[derive(Debug, Clone)]
pub struct Mt19937 {
    state: Box<[u32; 624]>,
    index: usize,
}

impl Mt19937 {
    /// `np.random.RandomState(seed)`.
    pub fn new(seed: u32) -> Self {
        let mut state = Box::new([0u32; 624]);
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Self { state, index: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 == 1 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    /// The next 32-bit output (tempered).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `random_interval(max)`: a value in `[0, max]` by masked rejection.
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    /// `RandomState.shuffle` of a 1-D array: Fisher–Yates from the end, `j =
    /// random_interval(i)` for `i = n−1 … 1` (nothing is drawn for fewer than two items).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }
}
