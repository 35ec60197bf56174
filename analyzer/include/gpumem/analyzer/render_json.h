// The JSON report, schema "gpumem.report/1". Every key is documented in docs/report-schema.md;
// keys are stable (append new ones, never rename), and objects keep a fixed key order.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

inline constexpr const char* kReportSchema = "gpumem.report/1";

nlohmann::ordered_json report_to_json(const Report& report);
std::string render_json(const Report& report, int indent = 2);

}  // namespace gpumem::analyzer
