// The HTML report: one self-contained page (CSS, JS and data inline; no network) drawn from the
// analyzer's model. What it shows and the escaping rules: docs/report-html.md.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "gpumem/analyzer/model.h"

namespace gpumem::analyzer {

// Caps on the listed rows keep the page small (< 2 MB) whatever the trace size; every cut list
// says on the page how many rows it left out.
struct HtmlOptions {
  size_t max_rows = 50;            // live-at-peak and leak rows per device
  size_t max_frames = 8;           // frames per call-site row
  size_t max_phase_rows = 100;     // per-phase peak rows per device (largest peaks)
  size_t max_phase_bands = 1000;   // outermost phases drawn as bands on the timeline
  size_t max_failed_marks = 1000;  // failed-allocation marks per device
  size_t max_anomalies = 200;
};

// The page's data, as embedded in it: its own shape, capped and shaped for drawing (not the
// report's gpumem.report/1), documented field by field in docs/report-html.md.
inline constexpr const char* kReportPageSchema = "gpumem.report-page/1";
nlohmann::json html_data(const Report& report, const HtmlOptions& options = {});
std::string render_html(const Report& report, const HtmlOptions& options = {});

// Escaping used by the page. Text for an HTML text node or a quoted attribute value.
std::string html_escape(std::string_view text);
// JSON text safe inside <script type="application/json">: <, >, &, U+2028 and U+2029 become
// \u escapes, so no trace string can close the script element or start markup.
std::string json_for_script(const nlohmann::json& value);

}  // namespace gpumem::analyzer
