# The HTML report and the Perfetto export, added to gpumem_analyzer (included from
# analyzer/CMakeLists.txt). The page's template, CSS and JS are turned into C++ raw strings in a
# generated header, so `gpumem report --html` writes one self-contained file: no CDN, no network.
set(_html_dir ${CMAKE_CURRENT_LIST_DIR})
set(_html_assets ${_html_dir}/report.html ${_html_dir}/report.css ${_html_dir}/report.js)
set(_html_header ${CMAKE_CURRENT_BINARY_DIR}/generated/gpumem/report_assets.h)
add_custom_command(
  OUTPUT ${_html_header}
  COMMAND ${CMAKE_COMMAND} -DOUT=${_html_header} -DTEMPLATE=${_html_dir}/report.html
          -DCSS=${_html_dir}/report.css -DJS=${_html_dir}/report.js -P ${_html_dir}/embed.cmake
  DEPENDS ${_html_assets} ${_html_dir}/embed.cmake
  COMMENT "Embedding the HTML report's template, CSS and JS"
  VERBATIM)
target_sources(gpumem_analyzer PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/src/render_html.cpp
  ${CMAKE_CURRENT_SOURCE_DIR}/src/render_perfetto.cpp
  ${_html_header})
target_include_directories(gpumem_analyzer PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/generated)
