// CUDA kernels of the CFT engine (crates/cft-cuda). Compiled to PTX by build.rs with nvcc when
// the `cuda` feature is on; loaded at run time by src/engine.rs.
//
// Exact, tie-grouped AP and ROC-AUC of many score rows, one thread block per row:
//   1. gather the row's positive scores (label 1) and sort them ascending (bitonic sort, in
//      shared memory when they fit, else in a global scratch area);
//   2. AP  = (1/P) Σ_{positives k} pos_ge(q_k) / (pos_ge(q_k) + neg_ge(q_k)), where pos_ge and
//      neg_ge count the positives / negatives scoring ≥ q_k. Every negative binary-searches the
//      sorted positives (m = #positives ≤ s) and adds one to hist[m]; neg_ge(q_k) is the
//      suffix sum of hist from k+1. Summing over a tie group's positives gives exactly
//      scikit-learn's Σ (R_n − R_{n−1}) P_n with ties grouped into one threshold.
//   3. AUC = Σ_{negatives} (2·#pos > s + #pos = s) / (2 P N), exact in 64-bit integers
//      (Mann–Whitney with ties counted ½, which is scikit-learn's trapezoidal ROC-AUC).
// Labels: 1 positive, 0 negative, anything else (−1: unknown or padding) is ignored.
#include <cuda_bf16.h>
#include <stdint.h>

#define SHARED_CAP 4096

__device__ __forceinline__ int lower_bound_f(const float* a, int n, float x) {
  int lo = 0, hi = n;
  while (lo < hi) { int mid = (lo + hi) >> 1; if (a[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}
__device__ __forceinline__ int upper_bound_f(const float* a, int n, float x) {
  int lo = 0, hi = n;
  while (lo < hi) { int mid = (lo + hi) >> 1; if (a[mid] <= x) lo = mid + 1; else hi = mid; }
  return lo;
}

// Ascending bitonic sort of `cap` (a power of two) floats by the whole block.
__device__ void block_bitonic_sort(float* a, int cap) {
  for (int k = 2; k <= cap; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < cap; i += blockDim.x) {
        int ixj = i ^ j;
        if (ixj > i) {
          bool up = (i & k) == 0;
          float x = a[i], y = a[ixj];
          if ((x > y) == up) { a[i] = y; a[ixj] = x; }
        }
      }
      __syncthreads();
    }
  }
}

__device__ double block_sum_f64(double v, double* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) red[wid] = v;
  __syncthreads();
  double t = 0.0;
  if (threadIdx.x == 0) { for (int w = 0; w < (int)(blockDim.x >> 5); ++w) t += red[w]; }
  __syncthreads();
  return t;  // valid in thread 0
}

__device__ unsigned long long block_sum_u64(unsigned long long v, unsigned long long* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) red[wid] = v;
  __syncthreads();
  unsigned long long t = 0;
  if (threadIdx.x == 0) { for (int w = 0; w < (int)(blockDim.x >> 5); ++w) t += red[w]; }
  __syncthreads();
  return t;
}

// Inclusive block scan of one int per thread (blockDim a multiple of 32, at most 1024).
__device__ int block_inclusive_scan(int v, int* warp_sums) {
  int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  for (int o = 1; o < 32; o <<= 1) { int t = __shfl_up_sync(0xffffffffu, v, o); if (lane >= o) v += t; }
  if (lane == 31) warp_sums[wid] = v;
  __syncthreads();
  if (wid == 0) {
    int w = (lane < (int)(blockDim.x >> 5)) ? warp_sums[lane] : 0;
    for (int o = 1; o < 32; o <<= 1) { int t = __shfl_up_sync(0xffffffffu, w, o); if (lane >= o) w += t; }
    warp_sums[lane] = w;
  }
  __syncthreads();
  if (wid > 0) v += warp_sums[wid - 1];
  __syncthreads();
  return v;
}

// Metric of every row of `scores` (rows × n, row stride ld). Row r uses bias[r * bias_stride]
// (bias may be null) and label row labels[(r / group) * labels_ld ...]. metric: 0 = AP, 1 = AUC.
// cap: power of two ≥ the largest positive count; scratch (when cap > SHARED_CAP): per row cap
// floats then cap + 1 ints. out[r]: the metric, NaN when undefined.
extern "C" __global__ void rank_metric_rows(const float* __restrict__ scores, long long ld,
                                            const float* __restrict__ bias, long long bias_stride,
                                            const signed char* __restrict__ labels, long long labels_ld,
                                            int group, int n, int metric, int cap,
                                            float* __restrict__ scratch, double* __restrict__ out) {
  __shared__ float s_pos[SHARED_CAP];
  __shared__ int s_hist[SHARED_CAP + 1];
  __shared__ int s_count, s_neg;
  __shared__ int warp_sums[32];
  __shared__ double red[32];
  __shared__ unsigned long long redu[32];
  const long long r = blockIdx.x;
  const float* row = scores + r * ld;
  const signed char* y = labels + (r / group) * labels_ld;
  const float b = bias ? bias[r * bias_stride] : 0.0f;
  float* pos = s_pos;
  int* hist = s_hist;
  if (cap > SHARED_CAP) {
    pos = scratch + r * (long long)(2 * cap + 1);
    hist = (int*)(pos + cap);
  }
  if (threadIdx.x == 0) { s_count = 0; s_neg = 0; }
  __syncthreads();
  int negs = 0;
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    signed char l = y[j];
    if (l == 1) { int at = atomicAdd(&s_count, 1); if (at < cap) pos[at] = row[j] + b; }
    else if (l == 0) negs++;
  }
  atomicAdd(&s_neg, negs);
  __syncthreads();
  const int P = s_count, N = s_neg;
  if (P == 0 || P > cap || (metric == 1 && N == 0)) {
    if (threadIdx.x == 0) out[r] = P > cap ? -1.0 : __longlong_as_double(0x7ff8000000000000LL);
    return;
  }
  int pcap = 1;
  while (pcap < P) pcap <<= 1;
  for (int i = P + threadIdx.x; i < pcap; i += blockDim.x) pos[i] = __int_as_float(0x7f800000);  // +inf
  for (int i = threadIdx.x; i <= P; i += blockDim.x) hist[i] = 0;
  __syncthreads();
  block_bitonic_sort(pos, pcap);
  if (metric == 1) {
    unsigned long long acc = 0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
      if (y[j] != 0) continue;
      float s = row[j] + b;
      int ub = upper_bound_f(pos, P, s), lb = lower_bound_f(pos, P, s);
      acc += 2ull * (unsigned long long)(P - ub) + (unsigned long long)(ub - lb);
    }
    unsigned long long t = block_sum_u64(acc, redu);
    if (threadIdx.x == 0) out[r] = (double)t / (2.0 * (double)P * (double)N);
    return;
  }
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    if (y[j] != 0) continue;
    atomicAdd(&hist[upper_bound_f(pos, P, row[j] + b)], 1);
  }
  __syncthreads();
  // Suffix sums in place: hist[m] = Σ_{m' ≥ m} hist[m'], processed from the end in chunks.
  int carry = 0;
  for (int base = P; base >= 0; base -= (int)blockDim.x) {
    int i = base - (int)threadIdx.x;
    int v = i >= 0 ? hist[i] : 0;
    int inc = block_inclusive_scan(v, warp_sums);
    if (i >= 0) hist[i] = inc + carry;
    __syncthreads();
    int total = warp_sums[(blockDim.x >> 5) - 1];
    __syncthreads();
    carry += total;
  }
  __syncthreads();
  double acc = 0.0;
  for (int k = threadIdx.x; k < P; k += blockDim.x) {
    int pos_ge = P - lower_bound_f(pos, P, pos[k]);
    int neg_ge = hist[k + 1];
    acc += (double)pos_ge / (double)(pos_ge + neg_ge);
  }
  double t = block_sum_f64(acc, red);
  if (threadIdx.x == 0) out[r] = t / (double)P;
}

// ---- counter-based random numbers (mirrored in src/rng.rs) ----
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
__device__ __forceinline__ double counter_uniform(unsigned long long seed, unsigned long long cat,
                                                  unsigned long long gen, unsigned long long ind,
                                                  unsigned long long gene, unsigned long long slot) {
  unsigned long long h = mix64(seed ^ (0x9E3779B97F4A7C15ULL * (cat + 1)));
  h = mix64(h ^ (0xD1B54A32D192ED03ULL * (gen + 1)));
  h = mix64(h ^ ((ind << 32) | gene) ^ (0x8CB92BA72F3D8DD7ULL * (slot + 1)));
  return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

extern "C" __global__ void counter_uniform_table(unsigned long long seed, int count, double* out) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) out[i] = counter_uniform(seed, i % 7, i % 5, i % 3, i, i % 4);
}

// ---- GA: one block per category selects parents, elites and mutations ----
// fitness: [k, pop]; outputs pa, pb, flag ([k, pop]; flag 0 = crossover, 1 = crossover +
// mutation, 2 = copy parent a unchanged, the elites), best [k].
extern "C" __global__ void ga_select(const double* __restrict__ fitness, int pop, int elitism,
                                     double mutation_prob, unsigned long long seed, int gen,
                                     const int* __restrict__ cat_ids, int* __restrict__ pa,
                                     int* __restrict__ pb, unsigned char* __restrict__ flag,
                                     int* __restrict__ best) {
  const int c = blockIdx.x;
  const double* f = fitness + (long long)c * pop;
  const unsigned long long cat = (unsigned long long)cat_ids[c];
  __shared__ double cum[1024];
  __shared__ double total;
  if (threadIdx.x == 0) {
    double t = 0.0;
    int b = 0;
    for (int i = 0; i < pop; ++i) {
      double v = f[i] > 0.0 ? f[i] : 0.0;  // NaN counts as 0
      t += v;
      cum[i] = t;
      if (f[i] > f[b]) b = i;
    }
    total = t;
    best[c] = b;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < pop; i += blockDim.x) {
    int par[2];
    for (int s = 0; s < 2; ++s) {
      double u = counter_uniform(seed, cat, gen, i, 0xFFFFFFFFull, s);
      int idx;
      if (total > 0.0) {
        double x = u * total;
        int lo = 0, hi = pop;  // first cumulative > x
        while (lo < hi) { int mid = (lo + hi) >> 1; if (cum[mid] <= x) lo = mid + 1; else hi = mid; }
        idx = lo < pop ? lo : pop - 1;
      } else {
        idx = (int)(u * pop);
        if (idx > pop - 1) idx = pop - 1;
      }
      par[s] = idx;
    }
    long long o = (long long)c * pop + i;
    pa[o] = par[0];
    pb[o] = par[1];
    flag[o] = counter_uniform(seed, cat, gen, i, 0xFFFFFFFFull, 2) < mutation_prob ? 1 : 0;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    // Elites: the best individuals, first index first on ties (a stable descending order).
    unsigned long long taken[16] = {0};
    for (int e = 0; e < elitism && e < pop && e < 1024; ++e) {
      int b = -1;
      for (int i = 0; i < pop; ++i) {
        if ((taken[i >> 6] >> (i & 63)) & 1ull) continue;
        if (b < 0 || f[i] > f[b]) b = i;
      }
      taken[b >> 6] |= 1ull << (b & 63);
      long long o = (long long)c * pop + e;
      pa[o] = b;
      flag[o] = 2;
    }
  }
}

// Next generation, one thread per gene: genes [k, pop, d1] (weights, the bias at column d,
// then padding to a multiple of 8 so that the GEMMs see aligned rows).
extern "C" __global__ void ga_breed(const float* __restrict__ cur, float* __restrict__ next,
                                    const int* __restrict__ pa, const int* __restrict__ pb,
                                    const unsigned char* __restrict__ flag, const int* __restrict__ cat_ids,
                                    int k, int pop, int d1, double crossover, double range,
                                    unsigned long long seed, int gen) {
  long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  long long total = (long long)k * pop * d1;
  if (idx >= total) return;
  int j = (int)(idx % d1);
  long long ci = idx / d1;
  int i = (int)(ci % pop);
  int c = (int)(ci / pop);
  const float* base = cur + (long long)c * pop * d1;
  unsigned char fl = flag[ci];
  int a = pa[ci];
  if (fl == 2) { next[idx] = base[(long long)a * d1 + j]; return; }
  unsigned long long cat = (unsigned long long)cat_ids[c];
  double u = counter_uniform(seed, cat, gen, i, j, 0);
  float v = u < crossover ? base[(long long)a * d1 + j] : base[(long long)pb[ci] * d1 + j];
  if (fl == 1) v += (float)(-range + 2.0 * range * counter_uniform(seed, cat, gen, i, j, 1));
  next[idx] = v;
}

// head[c, :] = genes[c, best[c], :]
extern "C" __global__ void gather_best(const float* __restrict__ genes, const int* __restrict__ best,
                                       float* __restrict__ head, int k, int pop, int d1) {
  long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long long)k * d1) return;
  int c = (int)(idx / d1), j = (int)(idx % d1);
  head[idx] = genes[((long long)c * pop + best[c]) * d1 + j];
}

// Keeps the best head: where active[c] and valid[c] > best_score[c], best_score/epoch move
// and the row is copied (improved[c] is set for the copy kernel).
extern "C" __global__ void track_best(const double* __restrict__ valid, double* __restrict__ best_score,
                                      int* __restrict__ best_epoch, unsigned char* __restrict__ improved,
                                      const unsigned char* __restrict__ active, int k, int epoch) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= k) return;
  bool up = active[c] && valid[c] > best_score[c];
  improved[c] = up ? 1 : 0;
  if (up) { best_score[c] = valid[c]; best_epoch[c] = epoch; }
}
extern "C" __global__ void copy_improved(const float* __restrict__ head, float* __restrict__ best,
                                         const unsigned char* __restrict__ improved, int k, int d1) {
  long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long long)k * d1) return;
  if (improved[idx / d1]) best[idx] = head[idx];
}

// f32 → bf16, elementwise.
extern "C" __global__ void to_bf16(const float* __restrict__ src, __nv_bfloat16* __restrict__ dst, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = __float2bfloat16(src[i]);
}

// ---- BP ----
// Loss gradient w.r.t. the logits (labels −1 give 0), the bias gradient (Σ g, in f64) and the
// loss per category. logits: [k, n] without bias; params [k, d1] (bias at d). loss: 0 = BCE,
// 1 = ASL(gamma_neg, gamma_pos, clip, eps). grad_out may be bf16 (grad_bf16) for bf16 GEMMs.
extern "C" __global__ void loss_grad(const float* __restrict__ logits, const signed char* __restrict__ labels,
                                     const float* __restrict__ params, int d1, int bias_col, int k, int n, int loss,
                                     float gamma_neg, float gamma_pos, float clip, float eps,
                                     float* __restrict__ grad, __nv_bfloat16* __restrict__ grad_bf16,
                                     double* __restrict__ bias_grad, double* __restrict__ loss_sum) {
  int c = blockIdx.y;
  __shared__ double red[32];
  double gsum = 0.0, lsum = 0.0;
  float b = params[(long long)c * d1 + bias_col];
  for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
    long long o = (long long)c * n + j;
    signed char l = labels[o];
    float g = 0.0f;
    if (l == 0 || l == 1) {
      float x = logits[o] + b;
      float p = 1.0f / (1.0f + expf(-x));
      float lv;
      if (loss == 0) {
        float t = l == 1 ? 1.0f : 0.0f;
        lv = fmaxf(x, 0.0f) - x * t + log1pf(expf(-fabsf(x)));
        g = p - t;
      } else if (l == 1) {
        float w = gamma_pos > 0.0f ? powf(1.0f - p, gamma_pos) : 1.0f;
        lv = -logf(fmaxf(p, eps)) * w;
        g = p > eps ? -(1.0f - p) * w : 0.0f;
      } else {
        float shifted = 1.0f - p + clip;
        float p_neg = clip > 0.0f ? fminf(shifted, 1.0f) : 1.0f - p;
        float w = gamma_neg > 0.0f ? powf(1.0f - p_neg, gamma_neg) : 1.0f;
        lv = -logf(fmaxf(p_neg, eps)) * w;
        bool clipped = clip > 0.0f && shifted > 1.0f;
        g = (clipped || p_neg <= eps) ? 0.0f : p * (1.0f - p) / p_neg * w;
      }
      gsum += (double)g;
      lsum += (double)lv;
    }
    grad[o] = g;
    if (grad_bf16) grad_bf16[o] = __float2bfloat16(g);
  }
  double gs = block_sum_f64(gsum, red);
  double ls = block_sum_f64(lsum, red);
  if (threadIdx.x == 0) { atomicAdd(&bias_grad[c], gs); atomicAdd(&loss_sum[c], ls); }
}

// Adam (PyTorch semantics) on [k, d1] parameters; grad_w: [k, d1] with the weight gradients in
// the first d columns; the bias gradient comes from bias_grad. Only active categories move.
extern "C" __global__ void adam_step(float* __restrict__ params, float* __restrict__ m, float* __restrict__ v,
                                     const float* __restrict__ grad_w, const double* __restrict__ bias_grad,
                                     const unsigned char* __restrict__ active, int k, int d1, int bias_col,
                                     float beta1, float beta2, float eps, float weight_decay,
                                     float step_size, float bc2_sqrt) {
  long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (long long)k * d1) return;
  int c = (int)(idx / d1), j = (int)(idx % d1);
  if (!active[c]) return;
  if (j > bias_col) return;  // row padding
  float g = j == bias_col ? (float)bias_grad[c] : grad_w[idx];
  g = g + weight_decay * params[idx];
  m[idx] += (1.0f - beta1) * (g - m[idx]);
  v[idx] = v[idx] * beta2 + (1.0f - beta2) * g * g;
  float denom = sqrtf(v[idx]) / bc2_sqrt + eps;
  params[idx] -= step_size * m[idx] / denom;
}

// dst[i, :] = src[idx[i], :] (a zero row where idx[i] < 0), f32 or bf16.
extern "C" __global__ void gather_rows(const float* __restrict__ src, const int* __restrict__ idx, long long rows,
                                       long long d, float* __restrict__ dst) {
  long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= rows * d) return;
  long long i = t / d, j = t % d;
  int r = idx[i];
  dst[t] = r < 0 ? 0.0f : src[(long long)r * d + j];
}
extern "C" __global__ void gather_rows_bf16(const __nv_bfloat16* __restrict__ src, const int* __restrict__ idx,
                                            long long rows, long long d, __nv_bfloat16* __restrict__ dst) {
  long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= rows * d) return;
  long long i = t / d, j = t % d;
  int r = idx[i];
  dst[t] = r < 0 ? __float2bfloat16(0.0f) : src[(long long)r * d + j];
}
