# Real-time safety of the streaming synth (docs/SYNTH.md, README "Real time"). Both
# programs link the shared library, as a host does, and carry a ctest timeout: a process
# call that waited for a posting thread would hang instead of failing.
function(ngs_add_synth_gtest name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/engine/src
                                             ${PROJECT_SOURCE_DIR}/tests/cpp)
  target_compile_definitions(${name} PRIVATE
    NGS_FIXTURES_DIR="${NGS_FIXTURES_DIR}" NGS_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  set(props TIMEOUT 300)
  if(T_LABELS)
    list(APPEND props LABELS "${T_LABELS}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES ${props})
endfunction()

# The interposition test: allocation, locks, waits and system calls inside
# ngs_synth_process / ngs_synth_post (tests/cpp/rt_interpose.cpp). Not in sanitizer
# builds, whose runtimes interpose the same functions.
if(NOT NGS_SANITIZE)
  ngs_add_synth_gtest(test_synth_rt
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_rt.cpp ${CMAKE_CURRENT_LIST_DIR}/rt_interpose.cpp
    LIBS ngs ${CMAKE_DL_LIBS})
endif()

# Posting threads, a statistics reader and the audio thread together; run in every build,
# and by scripts/test.sh in the ThreadSanitizer one (label threads).
ngs_add_synth_gtest(test_synth_tsan
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_tsan.cpp
  LIBS ngs Threads::Threads
  LABELS threads)

# The plain-C host (apps/synth_host) run end to end: its WAV against the offline renders;
# and the report of `ngs bench --stream`.
if(TARGET ngs_synth_host)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(NGS_TEST_SNDFILE REQUIRED IMPORTED_TARGET sndfile)
  ngs_add_synth_gtest(test_synth_host
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_synth_host.cpp
    LIBS ngs PkgConfig::NGS_TEST_SNDFILE)
  target_compile_definitions(test_synth_host PRIVATE NGS_SYNTH_HOST="$<TARGET_FILE:ngs_synth_host>")
  add_dependencies(test_synth_host ngs_synth_host)
  if(TARGET ngs_cli)  # `ngs bench --stream`'s report
    target_compile_definitions(test_synth_host PRIVATE NGS_CLI="$<TARGET_FILE:ngs_cli>")
    add_dependencies(test_synth_host ngs_cli)
  endif()
endif()
