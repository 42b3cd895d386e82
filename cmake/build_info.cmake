# Writes OUT (build_info.cpp) from IN with the commit of SOURCE_DIR, and -dirty when tracked
# files differ from it. Runs at every build, so the commit in `mlctl version`, in a model's
# lineage and in step-cache keys is the one built, not the one configured; the file changes only
# when the commit does, so an unchanged tree rebuilds nothing.
# cmake -DIN=... -DOUT=... -DSOURCE_DIR=... -DPROJECT_VERSION=... -DCMAKE_BUILD_TYPE=... -P build_info.cmake
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE MLCTL_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET
                RESULT_VARIABLE rev_parse)
if(NOT rev_parse EQUAL 0 OR NOT MLCTL_GIT_COMMIT)
  set(MLCTL_GIT_COMMIT "unknown")
else()
  execute_process(COMMAND git diff-index --quiet HEAD -- WORKING_DIRECTORY ${SOURCE_DIR}
                  RESULT_VARIABLE dirty ERROR_QUIET)
  if(NOT dirty EQUAL 0)
    string(APPEND MLCTL_GIT_COMMIT "-dirty")
  endif()
endif()
configure_file(${IN} ${OUT}.tmp @ONLY)
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
