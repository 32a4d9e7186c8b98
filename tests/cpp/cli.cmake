# CLI tests: tests/cli/test_cli.py runs the built `ngs` on the fixture models
# (NGS_FIXTURES_DIR, made by weights_converter.make_fixtures before ctest) and compares
# its outputs with the C API's through the Python bindings (NGS_LIBRARY: the built
# libngs.so).
if(TARGET ngs_cli)
  find_program(NGS_TEST_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(NOT NGS_TEST_PYTHON)
    find_program(NGS_TEST_PYTHON NAMES python3 REQUIRED)
  endif()
  set(NGS_CLI_GROUPS
    "info=test_info and not fp16"
    "sample=test_sample and not threads and not unconditional"
    "models=threads or unconditional or fp16"
    "path=test_path_"
    "audio=resynth or encode or decode_matches"
    "loop=test_loop or example_pattern"
    "bench=test_bench"
    "errors=test_error or existing_output"
    "hardening=test_hardening")
  set(NGS_CLI_ENV "NGS_BIN=$<TARGET_FILE:ngs_cli>;NGS_FIXTURES_DIR=${NGS_FIXTURES_DIR}")
  if(TARGET ngs)
    string(APPEND NGS_CLI_ENV ";NGS_LIBRARY=$<TARGET_FILE:ngs>")
  endif()
  foreach(entry ${NGS_CLI_GROUPS})
    string(REPLACE "=" ";" pair "${entry}")
    list(GET pair 0 group)
    list(GET pair 1 expr)
    add_test(NAME cli.${group}
             COMMAND ${NGS_TEST_PYTHON} -m pytest -q -p no:cacheprovider
                     ${PROJECT_SOURCE_DIR}/tests/cli/test_cli.py -k "${expr}")
    set_tests_properties(cli.${group} PROPERTIES
      ENVIRONMENT "${NGS_CLI_ENV}"
      LABELS cli TIMEOUT 600)
  endforeach()
endif()
