# gpumem_warnings(target): our code builds with -Wall -Wextra -Werror; third-party headers are
# included as SYSTEM so their warnings do not fail the build. GPUMEM_WERROR=OFF keeps them
# warnings: the sanitizer stages build at -O1, where gcc 12 raises other (false) warnings than at
# the main build's -O2, which already holds the code to -Werror.
option(GPUMEM_WERROR "Treat compiler warnings in gpumem's own code as errors" ON)
function(gpumem_warnings target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra>)
  if(GPUMEM_WERROR)
    target_compile_options(${target} PRIVATE
      $<$<COMPILE_LANGUAGE:C,CXX>:-Werror -Wno-error=deprecated-declarations>)
  endif()
endfunction()

if(GPUMEM_SANITIZE)
  string(REPLACE "," ";" _sans "${GPUMEM_SANITIZE}")
  foreach(s ${_sans})
    if(NOT s MATCHES "^(address|undefined|thread)$")
      message(FATAL_ERROR "GPUMEM_SANITIZE=${GPUMEM_SANITIZE}: use address,undefined or thread")
    endif()
  endforeach()
  add_compile_options(-fsanitize=${GPUMEM_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${GPUMEM_SANITIZE})
  # Tests that spawn a program per case (e.g. one gpumem run per cut offset) take a sparser
  # sample under a sanitizer, whose start-up cost each spawn pays; the main stage takes them all.
  add_compile_definitions(GPUMEM_SANITIZED=1)
endif()
