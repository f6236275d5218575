// A C interface to Gloo (https://github.com/facebookincubator/gloo), the collective
// communication library PyTorch uses for CPU tensors, for `src/dist/gloo.rs`: connect a full
// mesh of TCP pairs through a rendezvous store the Rust side serves, then sum-all-reduce f32
// buffers and synchronise. Every C++ exception is caught here and returned as a message:
// none crosses into Rust.

#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/math.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

extern "C" {
// The rendezvous store, implemented in Rust. `set` and `get` return 0 on success; otherwise
// they have written a message into `err` (`errlen` bytes, NUL-terminated). `get` waits for
// the key and hands its value to `push(out, data, len)`.
struct vg_store {
  void* user;
  int (*set)(void* user, const char* key, const char* data, size_t len, char* err, size_t errlen);
  int (*get)(void* user, const char* key, void* out,
             void (*push)(void* out, const char* data, size_t len), char* err, size_t errlen);
};
}

namespace {

void push_bytes(void* out, const char* data, size_t len) {
  auto* v = static_cast<std::vector<char>*>(out);
  v->insert(v->end(), data, data + len);
}

class CallbackStore : public gloo::rendezvous::Store {
 public:
  explicit CallbackStore(vg_store s) : s_(s) {}

  void set(const std::string& key, const std::vector<char>& data) override {
    char err[512] = {0};
    if (s_.set(s_.user, key.c_str(), data.data(), data.size(), err, sizeof(err)) != 0) {
      throw std::runtime_error(err);
    }
  }

  std::vector<char> get(const std::string& key) override {
    std::vector<char> out;
    char err[512] = {0};
    if (s_.get(s_.user, key.c_str(), &out, push_bytes, err, sizeof(err)) != 0) {
      throw std::runtime_error(err);
    }
    return out;
  }

  void wait(const std::vector<std::string>& keys) override {
    for (const auto& k : keys) {
      get(k);
    }
  }

  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override {
    wait(keys);
  }

 private:
  vg_store s_;
};

void write_error(const char* what, char* err, size_t errlen) {
  if (errlen == 0) return;
  std::strncpy(err, what, errlen - 1);
  err[errlen - 1] = '\0';
}

// Runs `f`; 0 when it returns, 1 with the exception's message in `err` when it throws.
template <typename F>
int guarded(F f, char* err, size_t errlen) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    write_error(e.what(), err, errlen);
  } catch (...) {
    write_error("unknown C++ exception in Gloo", err, errlen);
  }
  return 1;
}

}  // namespace

struct vg_group {
  std::shared_ptr<gloo::rendezvous::Context> context;
  uint32_t tag = 0;
};

extern "C" {

// Joins the group of `size` processes as `rank`: a TCP device bound to `hostname` (an address
// the other ranks reach) or to the interface `iface` when it is not empty, pairs to every
// other rank set up through `store`. Null on failure, with the reason in `err`.
vg_group* vg_connect(int rank, int size, const char* hostname, const char* iface,
                     vg_store store, long timeout_ms, char* err, size_t errlen) {
  vg_group* g = nullptr;
  guarded(
      [&] {
        gloo::transport::tcp::attr attr;
        if (iface != nullptr && iface[0] != '\0') {
          attr.iface = iface;
        } else {
          attr.hostname = hostname;
        }
        auto device = gloo::transport::tcp::CreateDevice(attr);
        auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
        context->setTimeout(std::chrono::milliseconds(timeout_ms));
        CallbackStore s(store);
        context->connectFullMesh(s, device);
        g = new vg_group();
        g->context = context;
      },
      err, errlen);
  return g;
}

// Sums `data` (`n` floats) over the group, in place: every rank ends with the same values.
int vg_allreduce_sum_f32(vg_group* g, float* data, size_t n, char* err, size_t errlen) {
  if (n == 0) return 0;
  return guarded(
      [&] {
        gloo::AllreduceOptions opts(g->context);
        opts.setInput(data, n);
        opts.setOutput(data, n);
        opts.setReduceFunction(
            static_cast<void (*)(void*, const void*, const void*, size_t)>(&gloo::sum<float>));
        opts.setTag(g->tag++);
        gloo::allreduce(opts);
      },
      err, errlen);
}

// Returns when every rank has called it.
int vg_barrier(vg_group* g, char* err, size_t errlen) {
  return guarded(
      [&] {
        gloo::BarrierOptions opts(g->context);
        opts.setTag(g->tag++);
        gloo::barrier(opts);
      },
      err, errlen);
}

void vg_free(vg_group* g) { delete g; }

}  // extern "C"
