// gpumem-train: trains a small MLP on synthetic data; batch size, accumulation, data residency and
// precision decide its device memory. See docs/trainer.md.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "trainer/backend.h"
#include "trainer/dataset.h"
#include "trainer/device_memory.h"
#include "trainer/oom_advice.h"
#include "trainer/options.h"
#include "trainer/report.h"
#include "trainer/trainer.h"

namespace gt = gpumem::train;

namespace {

// simcuda exports this symbol; its device memory is host memory, which the host backend needs.
bool on_simulated_device() {
  if (dlsym(RTLD_DEFAULT, "simcuda_is_simulated") != nullptr) return true;
  cudaDeviceProp prop{};
  return cudaGetDeviceProperties(&prop, 0) == cudaSuccess &&
         std::strcmp(prop.name, "gpumem simulated device") == 0;
}

std::string device_name() {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) return "unknown";
  return prop.name;
}

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  return code;
}

int run(const gt::TrainOptions& o) {
  int devices = 0;
  if (cudaError_t err = cudaGetDeviceCount(&devices); err != cudaSuccess || devices == 0) {
    return fail(
        gt::exit_cuda_error,
        fmt::format("gpumem-train: no CUDA device ({}). Without a GPU, run on the simulated "
                    "device: LD_LIBRARY_PATH=<build>/simcuda-lib gpumem-train ...",
                    err == cudaSuccess ? "0 devices" : cudaGetErrorString(err)));
  }
  const bool simulated = on_simulated_device();
  gt::BackendKind kind = o.backend;
  if (kind == gt::BackendKind::auto_pick)
    kind = simulated ? gt::BackendKind::host : gt::BackendKind::cuda;
  std::unique_ptr<gt::Backend> backend;
  if (kind == gt::BackendKind::host) {
    if (!simulated)
      return fail(gt::exit_bad_settings,
                  "gpumem-train: --backend host reads device memory from the CPU, which only works "
                  "on the simulated device (simcuda); on a real GPU use --backend cuda or auto");
    backend = gt::make_host_backend();
  } else {
    if (simulated)
      return fail(
          gt::exit_bad_settings,
          "gpumem-train: --backend cuda launches kernels, which the simulated device cannot "
          "run; use --backend host or auto");
    std::string why;
    backend = gt::make_cuda_backend(&why);
    if (!backend)
      return fail(gt::exit_bad_settings,
                  fmt::format("gpumem-train: cannot use --backend cuda: {}\nRebuild gpumem with "
                              "nvcc, or use the simulated device with --backend host.",
                              why));
  }

  const auto start = std::chrono::steady_clock::now();
  const gt::Dataset data = gt::make_teacher_dataset(o.samples, o.inputs, o.classes, o.seed);
  auto memory = gt::make_cuda_memory(o.async_alloc);
  try {
    gt::Trainer trainer(o, data, *memory, *backend);
    gt::RunSummary summary;
    summary.backend = backend->name();
    summary.device = device_name();
    const auto training_start = std::chrono::steady_clock::now();
    for (size_t e = 1; e <= o.epochs; ++e) {
      summary.last_epoch = trainer.train_epoch();
      if (e == 1) summary.first_epoch_loss = summary.last_epoch.loss;
      std::printf("epoch %zu/%zu: loss %.4f accuracy %.4f (%zu samples, %zu optimizer steps)\n", e,
                  o.epochs, summary.last_epoch.loss, summary.last_epoch.accuracy,
                  summary.last_epoch.samples, trainer.optimizer_steps());
      std::fflush(stdout);
    }
    backend->synchronize();
    const auto end = std::chrono::steady_clock::now();
    summary.seconds = std::chrono::duration<double>(end - start).count();
    summary.training_seconds = std::chrono::duration<double>(end - training_start).count();
    std::printf("%s\n", gt::final_report_json(o, summary, trainer, *memory).c_str());
  } catch (const gt::OutOfDeviceMemory& e) {
    return fail(gt::exit_out_of_memory, gt::out_of_memory_advice(o, e, memory->capacity_bytes()));
  } catch (const gt::DeviceError& e) {
    return fail(gt::exit_cuda_error, fmt::format("gpumem-train: {}", e.what()));
  }
  memory->release_all();
  return gt::exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  gt::ParsedArgs args = gt::parse_args(argc, argv);
  if (args.exit_code) {
    std::fprintf(*args.exit_code == 0 ? stdout : stderr, "%s\n", args.message.c_str());
    return *args.exit_code;
  }
  try {
    return run(args.options);
  } catch (const gt::DeviceError& e) {
    return fail(gt::exit_cuda_error, fmt::format("gpumem-train: {}", e.what()));
  } catch (const std::exception& e) {
    return fail(1, fmt::format("gpumem-train: internal error: {}", e.what()));
  }
}
