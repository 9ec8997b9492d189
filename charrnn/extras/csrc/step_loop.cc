// The Generator's step loop on the CPU: the GRU steps, the output layer and the sampling of
// every generated character in one call (loaded by charrnn/native.py through ctypes).
//
// Why hand-written: under XLA on CPU one stream's step with a 2,798-character output layer
// took ~80 us. The GRUs' matrices and the 1.4 MB output matrix do not fit together in one
// core's L2 cache, and XLA neither splits a matrix-vector product over cores nor reads the
// weights in a layout made for it. Here every matrix is packed in blocks of 64 output
// columns, [padded(n) / 64][m][64] (charrnn.native.pack), read contiguously into vector
// accumulators, and a second thread computes the upper half of a large output layer.
//
// The semantics are charrnn.generate's: Keras GRU cells (reset_after=True, sigmoid and tanh)
// and _pick_next_ids' sampling (top-k, temperature, inverse CDF of one uniform per stream).
// Results agree with the XLA loop up to float rounding.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#ifdef __linux__
#include <sched.h>
#endif

namespace {

constexpr int kBlock = 64;   // output columns per packed block: 4 vectors of 16 floats
constexpr int kUnroll = 4;   // input rows per loop turn, each with its own accumulators
typedef float Vec16 __attribute__((vector_size(64)));  // gcc/clang lower it to the CPU's vectors

// Mirrored by charrnn.native._Net (same field order and types).
struct Net {
  int32_t vocab_size;
  int32_t embedding_dim;                   // 0: one-hot inputs
  int32_t n_layers;
  const int32_t* units;                    // [n_layers]
  const float* embedding;                  // [vocab_size + 1][embedding_dim], or null
  const float* one_hot_kernel;             // [vocab_size][3 units[0]] unpacked, or null
  const float* const* kernels;             // packed, input -> 3 units; kernels[0] null if one-hot
  const float* const* recurrent_kernels;   // packed, units -> 3 units
  const float* const* input_biases;        // [padded(3 units)]
  const float* const* recurrent_biases;    // [padded(3 units)]
  const float* output_kernel;              // packed, units of the last layer -> vocab_size
  const float* output_bias;                // [padded(vocab_size)]
};

int padded(int n) { return (n + kBlock - 1) / kBlock * kBlock; }

// y[s][64 first, 64 last) = bias + x[s][0, m) . W for s < batch, over column blocks
// [first, last) of W, packed as above; y (rows of padded(n) floats) 64-byte aligned.
void affine(const float* x, int batch, int m, const float* packed, const float* bias, int n, float* y,
            int first = 0, int last = -1) {
  const int width = padded(n);
  if (last < 0) last = width / kBlock;
  for (int block = first; block < last; ++block) {
    const Vec16* weights = reinterpret_cast<const Vec16*>(packed + static_cast<size_t>(block) * m * kBlock);
    const Vec16* b = reinterpret_cast<const Vec16*>(bias + block * kBlock);
    for (int s = 0; s < batch; ++s) {  // the block stays in L1 while every stream reads it
      const float* xs = x + static_cast<size_t>(s) * m;
      Vec16 acc[kUnroll][4] = {};  // independent sums: one chain would wait on each FMA's latency
      const Vec16* w = weights;
      int i = 0;
      for (; i + kUnroll <= m; i += kUnroll, w += 4 * kUnroll)
        for (int u = 0; u < kUnroll; ++u)
          for (int q = 0; q < 4; ++q) acc[u][q] += xs[i + u] * w[4 * u + q];
      for (; i < m; ++i, w += 4)
        for (int q = 0; q < 4; ++q) acc[0][q] += xs[i] * w[q];
      Vec16* out = reinterpret_cast<Vec16*>(y + static_cast<size_t>(s) * width + block * kBlock);
      for (int q = 0; q < 4; ++q) {
        Vec16 sum = b[q];
        for (int u = 0; u < kUnroll; ++u) sum += acc[u][q];
        out[q] = sum;
      }
    }
  }
}

// e^x in float to ~1e-7 relative, 0 below -87 (libm's expf is not vectorised without -ffast-math).
inline float exp_approx(float x) {
  const float clamped = std::min(std::max(x, -87.0f), 88.0f);
  const float t = clamped * 1.44269504088896341f;  // e^x = 2^t = 2^n 2^f, f in [-0.5, 0.5]
  const float n = std::nearbyint(t);
  const float f = t - n;
  float p = 1.5403530e-4f;  // Taylor series of 2^f to degree 6
  p = p * f + 1.3333558e-3f;
  p = p * f + 9.6181291e-3f;
  p = p * f + 5.5504109e-2f;
  p = p * f + 2.4022651e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < -87.0f ? 0.0f : p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }
inline float tanh_approx(float x) { return 1.0f - 2.0f / (exp_approx(2.0f * x) + 1.0f); }

// n floats, 64-byte aligned: std::vector<Vec16> allocates with Vec16's alignment (C++17).
float* floats(std::vector<Vec16>& buffer, size_t n) {
  if (buffer.size() * 16 < n) buffer.resize((n + 15) / 16);
  return reinterpret_cast<float*>(buffer.data());
}

// The buffers of one call.
struct Workspace {
  std::vector<Vec16> inputs, input_proj, recurrent_proj, logits, probabilities;
  std::vector<float> block_mass, scratch;
};

// Reads ids[s] (1..vocab_size) for each stream and updates states (layer after layer, each
// [batch][units]). Returns the last layer's new states, the output layer's input.
const float* gru_steps(const Net& net, int batch, const int32_t* ids, float* states, Workspace& ws) {
  int max_width = 0, max_input = net.embedding_dim;
  for (int l = 0; l < net.n_layers; ++l) {
    max_width = std::max(max_width, padded(3 * net.units[l]));
    max_input = std::max(max_input, net.units[l]);
  }
  float* input_proj = floats(ws.input_proj, static_cast<size_t>(batch) * max_width);
  float* recurrent_proj = floats(ws.recurrent_proj, static_cast<size_t>(batch) * max_width);
  float* inputs = floats(ws.inputs, static_cast<size_t>(batch) * max_input);
  const float* x = nullptr;
  float* h = states;
  for (int l = 0; l < net.n_layers; ++l) {
    const int units = net.units[l], width = padded(3 * units);
    if (l > 0) {
      affine(x, batch, net.units[l - 1], net.kernels[l], net.input_biases[l], 3 * units, input_proj);
    } else if (net.embedding_dim > 0) {
      for (int s = 0; s < batch; ++s)
        std::memcpy(inputs + static_cast<size_t>(s) * net.embedding_dim,
                    net.embedding + static_cast<size_t>(ids[s]) * net.embedding_dim,
                    sizeof(float) * net.embedding_dim);
      affine(inputs, batch, net.embedding_dim, net.kernels[0], net.input_biases[0], 3 * units, input_proj);
    } else {  // one-hot input: the product is the kernel's row of the character
      for (int s = 0; s < batch; ++s) {
        const float* row = net.one_hot_kernel + static_cast<size_t>(ids[s] - 1) * 3 * units;
        float* out = input_proj + static_cast<size_t>(s) * width;
        for (int j = 0; j < 3 * units; ++j) out[j] = row[j] + net.input_biases[0][j];
      }
    }
    affine(h, batch, units, net.recurrent_kernels[l], net.recurrent_biases[l], 3 * units, recurrent_proj);
    for (int s = 0; s < batch; ++s) {  // Keras GRUCell, reset_after=True; gates in the order z, r, h
      const float* xp = input_proj + static_cast<size_t>(s) * width;
      const float* hp = recurrent_proj + static_cast<size_t>(s) * width;
      float* hs = h + static_cast<size_t>(s) * units;
      for (int j = 0; j < units; ++j) {
        const float z = sigmoid(xp[j] + hp[j]);
        const float r = sigmoid(xp[units + j] + hp[units + j]);
        const float candidate = tanh_approx(xp[2 * units + j] + r * hp[2 * units + j]);
        hs[j] = z * hs[j] + (1.0f - z) * candidate;
      }
    }
    x = h;
    h += static_cast<size_t>(batch) * units;
  }
  return x;
}

// The output layer's upper column blocks on a second core, step after step: the output
// matrix (1.4 MB at 2,798 characters) and the GRUs' do not fit together in one core's L2
// cache, and each half of it does. The threads meet through two counters, spinning: a step
// is ~20 us, far less than a sleep and wake-up.
class OutputHelper {
 public:
  OutputHelper(const Net& net, int batch, int first_block) : net_(net), batch_(batch), first_(first_block) {
    thread_ = std::thread([this] { run(); });
  }
  ~OutputHelper() {
    requested_.store(-1, std::memory_order_release);
    thread_.join();
  }
  void start(const float* x, float* logits) {  // x and logits must stay until finish()
    x_ = x;
    logits_ = logits;
    requested_.store(++steps_, std::memory_order_release);
  }
  void finish() const {
    for (int spins = 0; finished_.load(std::memory_order_acquire) != steps_; ++spins) pause(spins);
  }

 private:
  // Spins a step's worth of time, then yields: the other thread may have lost its core.
  static void pause(int spins) {
    if (spins > (1 << 12)) {
      std::this_thread::yield();
      return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  void run() {
    for (int64_t done = 0;;) {
      int64_t step;
      for (int spins = 0; (step = requested_.load(std::memory_order_acquire)) == done; ++spins) pause(spins);
      if (step < 0) return;
      const int last_layer_units = net_.units[net_.n_layers - 1];
      affine(x_, batch_, last_layer_units, net_.output_kernel, net_.output_bias, net_.vocab_size, logits_,
             first_, padded(net_.vocab_size) / kBlock);
      finished_.store(done = step, std::memory_order_release);
    }
  }
  const Net& net_;
  const int batch_, first_;
  const float* x_ = nullptr;
  float* logits_ = nullptr;
  int64_t steps_ = 0;
  std::atomic<int64_t> requested_{0}, finished_{0};
  std::thread thread_;
};

// The logits of x (batch rows of the last layer's states) into logits [batch][padded(vocab_size)],
// the upper blocks by `helper` when there is one.
void output_layer(const Net& net, int batch, const float* x, float* logits, OutputHelper* helper, int split) {
  const int units = net.units[net.n_layers - 1];
  if (helper == nullptr) {
    affine(x, batch, units, net.output_kernel, net.output_bias, net.vocab_size, logits);
    return;
  }
  helper->start(x, logits);
  affine(x, batch, units, net.output_kernel, net.output_bias, net.vocab_size, logits, 0, split);
  helper->finish();
}

// One class index drawn from a row of logits (64-byte aligned, vocab_size of them) as
// _pick_next_ids draws it from `uniform`: top-k, temperature, then the inverse CDF in two
// levels (blocks of 64 classes, then the classes of one block).
int sample(const float* logits, int vocab_size, float uniform, float temperature, int top_k, Workspace& ws) {
  const int n_vectors = vocab_size / 16;
  const Vec16* rows = reinterpret_cast<const Vec16*>(logits);
  float max_logit = logits[0];
  if (n_vectors > 0) {
    Vec16 largest = rows[0];
    for (int i = 1; i < n_vectors; ++i) largest = largest > rows[i] ? largest : rows[i];
    for (int lane = 0; lane < 16; ++lane) max_logit = std::max(max_logit, largest[lane]);
  }
  for (int v = n_vectors * 16; v < vocab_size; ++v) max_logit = std::max(max_logit, logits[v]);
  if (temperature == 0.0f) {  // greedy: the first of the largest
    for (int v = 0; v < vocab_size; ++v)
      if (logits[v] == max_logit) return v;
    return 0;  // NaN logits
  }
  float kth = -std::numeric_limits<float>::infinity();
  if (top_k < vocab_size) {  // the k-th largest; ties with it are kept
    ws.scratch.assign(logits, logits + vocab_size);
    std::nth_element(ws.scratch.begin(), ws.scratch.begin() + (top_k - 1), ws.scratch.end(),
                     std::greater<float>());
    kth = ws.scratch[top_k - 1];
  }
  const int width = padded(vocab_size), n_blocks = width / kBlock;
  float* p = floats(ws.probabilities, width);
  for (int v = 0; v < vocab_size; ++v)
    p[v] = logits[v] >= kth ? exp_approx((logits[v] - max_logit) / temperature) : 0.0f;
  std::fill(p + vocab_size, p + width, 0.0f);
  ws.block_mass.resize(n_blocks);
  double total = 0.0;
  for (int b = 0; b < n_blocks; ++b) {
    const Vec16* q = reinterpret_cast<const Vec16*>(p + b * kBlock);
    const Vec16 sum = (q[0] + q[1]) + (q[2] + q[3]);
    float mass = 0.0f;
    for (int lane = 0; lane < 16; ++lane) mass += sum[lane];
    ws.block_mass[b] = mass;
    total += mass;
  }
  const double target = static_cast<double>(uniform) * total;
  double cumulative = 0.0;
  int last_positive = -1;  // the last class of probability > 0 seen: rounding may leave the target beyond all
  for (int b = 0; b < n_blocks; ++b) {
    if (ws.block_mass[b] <= 0.0f) continue;  // a class of probability 0 is never chosen
    if (cumulative + ws.block_mass[b] >= target) {
      for (int v = b * kBlock; v < (b + 1) * kBlock; ++v) {
        if (p[v] <= 0.0f) continue;
        cumulative += p[v];
        last_positive = v;
        if (cumulative >= target) return v;
      }
      return last_positive;
    }
    cumulative += ws.block_mass[b];
    for (int v = (b + 1) * kBlock - 1; v >= b * kBlock; --v)
      if (p[v] > 0.0f) { last_positive = v; break; }
  }
  return std::max(last_positive, 0);
}

// The helper only pays for a large output layer with a second core to run on.
constexpr int kMinBlocksToSplit = 8;  // 512 classes

int usable_cores() {
#ifdef __linux__
  cpu_set_t cores;  // the cores this process may run on (taskset, cgroups' cpusets)
  if (sched_getaffinity(0, sizeof cores, &cores) == 0) return CPU_COUNT(&cores);
#endif
  return static_cast<int>(std::thread::hardware_concurrency());
}

std::unique_ptr<OutputHelper> maybe_helper(const Net& net, int batch, int* split) {
  const int n_blocks = padded(net.vocab_size) / kBlock;
  *split = n_blocks;
  if (n_blocks < kMinBlocksToSplit || usable_cores() < 2) return nullptr;  // it spins: it needs its own core
  try {
    auto helper = std::make_unique<OutputHelper>(net, batch, n_blocks / 2);
    *split = n_blocks / 2;
    return helper;
  } catch (const std::system_error&) {  // no thread to be had: one thread does it all
    return nullptr;
  }
}

}  // namespace

extern "C" {

// The entry points return 0, -1 for an id out of range, or -2 when memory ran out (no C++
// exception may cross into Python).
constexpr int kOutOfMemory = -2;

// One step for `batch` streams (for tests): ids in 1..vocab_size, states layer after layer
// ([batch][units] each), logits [batch][vocab_size].
int charrnn_step(const Net* net, int batch, const int32_t* ids, float* states, float* logits) try {
  for (int s = 0; s < batch; ++s)
    if (ids[s] < 1 || ids[s] > net->vocab_size) return -1;
  Workspace ws;
  const int width = padded(net->vocab_size);
  float* padded_logits = floats(ws.logits, static_cast<size_t>(batch) * width);
  int split;
  std::unique_ptr<OutputHelper> helper = maybe_helper(*net, batch, &split);
  output_layer(*net, batch, gru_steps(*net, batch, ids, states, ws), padded_logits, helper.get(), split);
  for (int s = 0; s < batch; ++s)
    std::memcpy(logits + static_cast<size_t>(s) * net->vocab_size,
                padded_logits + static_cast<size_t>(s) * width, sizeof(float) * net->vocab_size);
  return 0;
} catch (const std::bad_alloc&) {
  return kOutOfMemory;
}

// ids[s] = 1 + the class sample() draws from row s of logits [batch][vocab_size] (for tests).
int charrnn_sample(const float* logits, int batch, int vocab_size, const float* uniforms, float temperature,
                   int top_k, int32_t* ids) try {
  Workspace ws;
  float* row = floats(ws.logits, padded(vocab_size));
  for (int s = 0; s < batch; ++s) {
    std::memcpy(row, logits + static_cast<size_t>(s) * vocab_size, sizeof(float) * vocab_size);
    ids[s] = 1 + sample(row, vocab_size, uniforms[s], temperature, top_k, ws);
  }
  return 0;
} catch (const std::bad_alloc&) {
  return kOutOfMemory;
}

// Generator._chunk's loop over all steps from zero states. At step t each stream reads its
// character t (prompt_by_time[0] at t = 0, then produced[t - 1]); its character t + 1 is
// prompt_by_time[t + 1] while t + 1 < lengths[s], else drawn from uniforms[t]. Arrays are
// time-major: prompt_by_time [n_steps + 1][batch], uniforms and produced [n_steps][batch].
int charrnn_generate(const Net* net, int batch, int n_steps, const int32_t* prompt_by_time,
                     const int32_t* lengths, const float* uniforms, float temperature, int top_k,
                     int32_t* produced) try {
  size_t state_size = 0;
  for (int l = 0; l < net->n_layers; ++l) state_size += static_cast<size_t>(batch) * net->units[l];
  std::vector<float> states(state_size, 0.0f);
  Workspace ws;
  const int width = padded(net->vocab_size);
  float* logits = floats(ws.logits, static_cast<size_t>(batch) * width);
  int split;
  std::unique_ptr<OutputHelper> helper = maybe_helper(*net, batch, &split);
  for (int t = 0; t < n_steps; ++t) {
    const int32_t* ids = t == 0 ? prompt_by_time : produced + static_cast<size_t>(t - 1) * batch;
    bool sampling = false;
    for (int s = 0; s < batch; ++s) {
      if (ids[s] < 1 || ids[s] > net->vocab_size) return -1;
      sampling = sampling || t + 1 >= lengths[s];
    }
    const float* x = gru_steps(*net, batch, ids, states.data(), ws);
    if (sampling) output_layer(*net, batch, x, logits, helper.get(), split);  // none inside prompts
    int32_t* next = produced + static_cast<size_t>(t) * batch;
    for (int s = 0; s < batch; ++s)
      next[s] = t + 1 < lengths[s]
                    ? prompt_by_time[static_cast<size_t>(t + 1) * batch + s]
                    : 1 + sample(logits + static_cast<size_t>(s) * width, net->vocab_size,
                                 uniforms[static_cast<size_t>(t) * batch + s], temperature, top_k, ws);
  }
  return 0;
} catch (const std::bad_alloc&) {
  return kOutOfMemory;
}

}  // extern "C"
