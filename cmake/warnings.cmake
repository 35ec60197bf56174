# gpumem_warnings(target): our code builds with -Wall -Wextra -Werror; third-party headers are
# included as SYSTEM so their warnings do not fail the build.
function(gpumem_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:C,CXX>:-Wall -Wextra -Werror -Wno-error=deprecated-declarations>)
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
endif()
