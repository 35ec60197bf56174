#include "gpumem/resources/memory_resource.h"

namespace gpumem::resources {

const char* status_name(Status s) {
  switch (s) {
    case Status::ok:
      return "ok";
    case Status::out_of_memory:
      return "out_of_memory";
    case Status::invalid_value:
      return "invalid_value";
    case Status::upstream_error:
      return "upstream_error";
  }
  return "unknown";
}

}  // namespace gpumem::resources
