add_executable(resolve_baseline ${CMAKE_CURRENT_LIST_DIR}/resolve_baseline.c)
target_link_libraries(resolve_baseline PRIVATE PkgConfig::HIREDIS)
