# cmake --install: headers, libraries, the hubel executable and a CMake package, so that
# find_package(hubel) and target_link_libraries(app hubel::hubel) work in a user's project.
include(CMakePackageConfigHelpers)

set(CMAKE_INSTALL_RPATH_USE_LINK_PATH ON)
install(TARGETS hubel_framework hubel_layers hubel_comm hubel_datasets hubel_inference hubel_all
        EXPORT hubelTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(TARGETS hubel RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
foreach(dir framework layers comm datasets inference)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/hubel
          FILES_MATCHING PATTERN "*.hpp")
endforeach()

set(HUBEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hubel)
install(EXPORT hubelTargets NAMESPACE hubel:: DESTINATION ${HUBEL_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/hubelConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/hubelConfig.cmake INSTALL_DESTINATION ${HUBEL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/hubelConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/hubelConfig.cmake ${PROJECT_BINARY_DIR}/hubelConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/HubelBlas.cmake
        DESTINATION ${HUBEL_CMAKE_DIR})
